"""Reusable stage outputs: a folder is reused only if it was made by the same configuration, and
jobs that start at the same moment take turns at it.

Sweeps share their expensive artifacts (a checklist model, a base generator, annotations, scored
samples) through one folder per artifact; a fingerprint file written next to a made artifact says
what made it, and a folder made with another configuration is an error, not a silent mix. Parallel
jobs (``hydra/launcher=joblib``, SLURM array jobs) reach the same folder together: each waits for
the folder's lock (:func:`shared_folder`), a ``filelock`` beside the folder, so one job makes the
artifact while the others wait and then reuse it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import filelock

from vrexp.atomic import atomic_write

log = logging.getLogger(__name__)

FINGERPRINT = "fingerprint.json"


class ArtifactsError(RuntimeError):
    """An artifacts folder that holds a result made with another configuration."""


def lock_path(folder: str | Path) -> Path:
    """The lock file of a shared folder: beside it, not in it, because a maker may put a whole
    new folder in its place (:func:`vrexp.atomic.atomic_dir`) and a lock file inside would go
    with the old one while it is held."""
    folder = Path(folder)
    return folder.with_name(f".{folder.name}.lock")


@contextmanager
def shared_folder(folder: str | Path, what: str) -> Iterator[Path]:
    """Hold ``folder`` for one job at a time (a context), waiting for a job that holds it.

    The lock is an ``flock``: a killed holder's lock goes with its process, so a waiter never
    waits for a dead job. A stage inside that resumes on its own (annotate, sample) then finds
    the other job's parts done; a made artifact is checked by :func:`ensure_artifact`."""
    folder = Path(folder)
    lock = filelock.FileLock(lock_path(folder))
    lock_path(folder).parent.mkdir(parents=True, exist_ok=True)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        log.info("another job is making the %s in %s; waiting for it", what, folder)
        lock.acquire()  # no timeout: the holder ends, or dies and its lock with it
    try:
        yield folder
    finally:
        lock.release()


def ensure_artifact(
    folder: str | Path,
    wanted: dict[str, Any],
    done_file: str,
    make: Callable[[], Any],
    *,
    what: str,
    fingerprint_file: str = FINGERPRINT,
) -> bool:
    """Run ``make`` unless ``folder`` holds ``done_file`` made with ``wanted``; True if it ran.

    Under the folder's lock (:func:`shared_folder`): a second job waits, then reuses what the
    first made, or with another configuration gets :class:`ArtifactsError`. The fingerprint is
    the artifact's seal, written atomically once ``make`` has returned: a maker killed half way
    leaves no fingerprint, so the next job makes the artifact again instead of trusting it."""
    folder = Path(folder)
    wanted = json.loads(json.dumps(wanted, sort_keys=True, default=str))
    with shared_folder(folder, what):
        if (folder / done_file).exists() and (folder / fingerprint_file).exists():
            found = json.loads((folder / fingerprint_file).read_text())
            if found == wanted:
                return False
            changed = sorted(k for k in wanted if wanted[k] != found.get(k))
            raise ArtifactsError(
                f"{folder} holds a {what} made with a different {', '.join(changed)} "
                "configuration; point task.artifacts_dir elsewhere or delete that folder"
            )
        # A seal without its done file is from a maker that wrote in place and was killed.
        (folder / fingerprint_file).unlink(missing_ok=True)
        make()
        if not (folder / done_file).exists():
            raise ArtifactsError(
                f"making the {what} in {folder} ended without writing {done_file}; "
                "nothing was sealed, so the next job makes it again"
            )
        payload = json.dumps(wanted, indent=2, sort_keys=True) + "\n"
        atomic_write(folder / fingerprint_file, lambda p: p.write_text(payload))
    return True
