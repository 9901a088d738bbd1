"""Claiming output folders for resumable jobs; re-exports :func:`vrexp.atomic.atomic_write`.

A job's folder carries its manifest: parts written under the same manifest are kept (a killed run
resumes), another run's folder is refused or cleared. Every file goes through ``atomic_write``.
"""

from __future__ import annotations

import json
from pathlib import Path

from vrexp.atomic import atomic_write

__all__ = ["OutputClaimError", "atomic_write", "claim_output"]


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
