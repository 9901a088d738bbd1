"""Claiming output folders for resumable jobs; re-exports :func:`vrexp.atomic.atomic_write`.

A job's folder carries its manifest: what the parts were made from (digests of the item list and
the model, see :mod:`vrexp.data.digests`) and every setting that shapes them. A rerun continues
only when all of it matches; otherwise it is refused naming what changed, or (``overwrite``)
cleared. While a job runs it holds the folder's lock file, so a second process that claims the
same folder is refused instead of writing parts beside it. Every file goes through
``atomic_write``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import filelock

from vrexp.atomic import atomic_write
from vrexp.data.digests import remember

__all__ = [
    "LOCK_FILE",
    "MANIFEST_FILE",
    "OutputClaimError",
    "atomic_write",
    "claim_output",
    "manifest_changes",
    "read_manifest",
]

MANIFEST_FILE = "manifest.json"
LOCK_FILE = ".lock"
_SHOWN_CHANGES = 6


class OutputClaimError(RuntimeError):
    """An output folder that holds the results of another run, or that another process holds."""


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _digest_change(label: str, old: Mapping, new: Mapping) -> str:
    where = f" at {new['path']}" if new.get("path") else ""
    counts = (
        f"{old['count']} -> {new['count']} entries, "
        if "count" in old and "count" in new and old["count"] != new["count"]
        else ""
    )
    return f"{label}{where} changed ({counts}digest {old['sha256'][:12]} -> {new['sha256'][:12]})"


def manifest_changes(
    old: Mapping[str, Any], new: Mapping[str, Any], labels: Mapping[str, str] | None = None
) -> list[str]:
    """What differs between a recorded and a wanted manifest, one phrase per setting, by dotted
    key (``labels`` names digest entries for people). Digests compare by ``sha256`` only: a model
    moved to another path with the same files is the same model."""
    labels = labels or {}

    def walk(a: Mapping, b: Mapping, prefix: str) -> list[str]:
        found = []
        for key in sorted(set(a) | set(b), key=str):
            name = f"{prefix}{key}"
            label = labels.get(name, name)
            if key not in a:
                found.append(f"{label} was not recorded (now {_short(b[key])})")
            elif key not in b:
                found.append(f"{label} is no longer given (was {_short(a[key])})")
            elif isinstance(a[key], Mapping) and isinstance(b[key], Mapping):
                if "sha256" in a[key] and "sha256" in b[key]:
                    if a[key]["sha256"] != b[key]["sha256"]:
                        found.append(_digest_change(label, a[key], b[key]))
                else:
                    found += walk(a[key], b[key], f"{name}.")
            elif a[key] != b[key]:
                found.append(f"{label} changed from {_short(a[key])} to {_short(b[key])}")
        return found

    return walk(old, new, "")


def read_manifest(out_dir: str | Path) -> dict[str, Any] | None:
    """The manifest of an output folder, or None where it has none."""
    path = Path(out_dir) / MANIFEST_FILE
    return json.loads(path.read_text()) if path.is_file() else None


@contextmanager
def claim_output(
    out_dir: str | Path,
    manifest: dict | Callable[[], dict],
    overwrite: bool,
    *,
    stale: tuple[str, ...],
    what: str,
    folder_key: str = "task.out_dir",
    labels: Mapping[str, str] | None = None,
    error: type[Exception] = OutputClaimError,
    wait: bool = False,
) -> Iterator[Path]:
    """Hold ``out_dir`` for this job (a context): lock it, then keep the parts already there
    when its manifest matches ``manifest`` (a killed run resumes), else raise ``error`` naming
    what changed, or with ``overwrite`` delete its ``stale`` files first. ``what`` says what the
    folder holds; ``folder_key`` is the setting that picks another folder. ``manifest`` may be a
    function, called under the lock once the recorded digests are known (so the model files a
    resume finds unchanged are not hashed again). ``wait``: wait for a held lock instead of
    refusing (the merge of shards that finish together, :mod:`vrexp.data.shards`)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(out_dir / LOCK_FILE)
    try:
        lock.acquire(timeout=-1 if wait else 0)
    except filelock.Timeout:
        raise error(
            f"{out_dir} is held by another process (lock file {out_dir / LOCK_FILE}): another "
            f"job is writing {what} there; wait for it to end or choose another {folder_key}"
        ) from None
    try:
        found = read_manifest(out_dir)
        remember(found)
        payload = json.loads(
            json.dumps(manifest() if callable(manifest) else manifest, default=str)
        )
        if found is not None:
            changes = manifest_changes(found, payload, labels)
        elif any(any(out_dir.glob(pattern)) for pattern in stale):
            changes = [f"it has no {MANIFEST_FILE} to say what its files were made from"]
        else:
            changes = []
        if changes:
            if not overwrite:
                more = len(changes) - _SHOWN_CHANGES
                raise error(
                    f"{out_dir} holds {what} made otherwise, so it cannot be resumed: "
                    + "; ".join(changes[:_SHOWN_CHANGES])
                    + (f"; and {more} more" if more > 0 else "")
                    + f". Set task.overwrite=true to start afresh there, or choose another "
                    f"{folder_key}"
                )
            for pattern in stale:
                for old in out_dir.glob(pattern):
                    old.unlink()
        atomic_write(
            out_dir / MANIFEST_FILE,
            lambda p: p.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n"),
        )
        yield out_dir
    finally:
        lock.release()
