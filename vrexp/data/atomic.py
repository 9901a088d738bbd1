"""Atomic file writes: every long job writes through here, so a kill never leaves a half file.

The content goes to a hidden temporary name beside the target and is renamed over it; readers
(and resumes) see either the old file or the whole new one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary path, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)
    return path


class OutputClaimError(RuntimeError):
    """An output folder that holds the results of another run."""


def claim_output(
    out_dir: str | Path,
    manifest: dict,
    overwrite: bool,
    *,
    stale: tuple[str, ...],
    what: str,
) -> None:
    """Make ``out_dir`` this run's: a folder with another manifest is an error, or is cleared of
    its ``stale`` files when ``overwrite``. Parts already there under the same manifest are kept
    (that is how a killed run resumes)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "manifest.json"
    payload = json.loads(json.dumps(manifest, default=str))
    if path.exists() and json.loads(path.read_text()) != payload:
        if not overwrite:
            raise OutputClaimError(
                f"{out_dir} holds {what}; choose another task.out_dir or set task.overwrite=true"
            )
        for pattern in stale:
            for old in out_dir.glob(pattern):
                old.unlink()
    atomic_write(path, lambda p: p.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n"))
