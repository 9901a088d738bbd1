"""Atomic file writes: every long job writes through here, so a kill never leaves a half file.

The content goes to a hidden temporary name beside the target and is renamed over it; readers
(and resumes) see either the old file or the whole new one. A primitive (like
:mod:`vrexp.resources`): any layer may use it, and it imports no other vrexp module.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary path, then rename it to ``path``; a ``write`` that
    raises leaves no temporary file behind. The temporary name ends in ``.tmp``: a writer that
    picks its format from the suffix must be told the format."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
