"""Atomic file writes: every long job writes through here, so a kill never leaves a half file.

The content goes to a hidden temporary name beside the target and is renamed over it; readers
(and resumes) see either the old file or the whole new one. :func:`atomic_dir` does the same for
a folder (a trained model). A primitive (like
:mod:`vrexp.resources`): any layer may use it, and it imports no other vrexp module.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Fill a hidden temporary folder beside ``path``, then put it in place of ``path``: a reader
    finds no folder, the previous one, or the whole new one, never a half-written one. A body
    that raises leaves ``path`` as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, old = path.with_name(f".{path.name}.tmp"), path.with_name(f".{path.name}.old")
    for leftover in (tmp, old):  # from a run killed while writing
        shutil.rmtree(leftover, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
