"""Claiming output folders for resumable jobs; re-exports :func:`vrexp.atomic.atomic_write`.

A job's folder carries its manifest: parts written under the same manifest are kept (a killed run
resumes), another run's folder is refused or cleared. Every file goes through ``atomic_write``.
"""

from __future__ import annotations

import json
from pathlib import Path

from vrexp.atomic import atomic_write

__all__ = ["OutputClaimError", "atomic_write", "changed_keys", "claim_output"]


class OutputClaimError(RuntimeError):
    """An output folder that holds the results of another run."""


def changed_keys(old: dict, new: dict, prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two manifests."""
    changed = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changed += changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            changed.append(f"{prefix}{key}")
    return changed


def claim_output(
    out_dir: str | Path,
    manifest: dict,
    overwrite: bool,
    *,
    stale: tuple[str, ...],
    what: str,
    folder_key: str = "task.out_dir",
) -> None:
    """Make ``out_dir`` this run's: a folder with another manifest is an error, or is cleared of
    its ``stale`` files when ``overwrite``. Parts already there under the same manifest are kept
    (that is how a killed run resumes)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "manifest.json"
    payload = json.loads(json.dumps(manifest, default=str))
    found = json.loads(path.read_text()) if path.exists() else payload
    if found != payload:
        if not overwrite:
            changed = ", ".join(changed_keys(found, payload))
            raise OutputClaimError(
                f"{out_dir} holds {what} made with another {changed}; choose another "
                f"{folder_key} or set task.overwrite=true"
            )
        for pattern in stale:
            for old in out_dir.glob(pattern):
                old.unlink()
    atomic_write(path, lambda p: p.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n"))
