"""Jobs of a parallel sweep racing for one shared artifact (vrexp.data.artifacts).

Real processes, started together at a barrier, call :func:`ensure_artifact` on one folder: the
artifact is made once and both get it, a job with another configuration gets the clear error, and
a maker killed half way (SIGKILL, after its done file but before the seal) leaves nothing that the
next job trusts: the job that was waiting makes it again. Two jobs needing one SynthWorld split
render it once between them. docs/sweeps.md §3.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.conftest import compose_config
from vrexp.checklist import Checklist
from vrexp.data.artifacts import ArtifactsError, ensure_artifact, lock_path
from vrexp.data.synthworld import preference_split, read_items

# fork: the children need only this module's functions, not a fresh interpreter's imports.
CTX = multiprocessing.get_context("fork")
DONE = "done.json"


def make_artifact(folder: Path, tag: str, calls: Path, hold: float = 0.0, die: bool = False):
    """A cheap maker that writes its artifact in two steps, logging each call; ``hold`` keeps
    the half-written state open long enough that an unlocked rival would see it."""
    with calls.open("a") as log:  # one short line per call: O_APPEND keeps lines whole
        log.write(f"{tag} {os.getpid()}\n")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "weights.txt").write_text(f"half {tag}")
    time.sleep(hold)
    (folder / "weights.txt").write_text(f"model {tag}")
    (folder / DONE).write_text(json.dumps({"tag": tag}))
    if die:  # killed after its done file, before ensure_artifact seals it
        (folder.parent / "dying").touch()
        time.sleep(600)


def racer(folder, wanted, calls, barrier, results, hold, die=False):
    barrier.wait()
    try:
        made = ensure_artifact(
            folder,
            wanted,
            DONE,
            lambda: make_artifact(folder, wanted["tag"], calls, hold, die),
            what="toy model",
        )
        results.put(
            (os.getpid(), "made" if made else "reused", (folder / "weights.txt").read_text())
        )
    except ArtifactsError as err:
        results.put((os.getpid(), "error", str(err)))


def race(tmp_path: Path, *wanted: dict, hold: float = 0.5) -> list[tuple]:
    folder, calls = tmp_path / "artifacts" / "model", tmp_path / "calls.log"
    barrier, results = CTX.Barrier(len(wanted)), CTX.Queue()
    procs = [
        CTX.Process(target=racer, args=(folder, w, calls, barrier, results, hold)) for w in wanted
    ]
    for p in procs:
        p.start()
    out = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert {pid for pid, *_ in out} == {p.pid for p in procs}  # really other processes
    return out


def test_two_jobs_racing_for_one_artifact_make_it_once_and_share_it(tmp_path):
    out = race(tmp_path, {"tag": "a", "lr": 0.1}, {"tag": "a", "lr": 0.1})
    assert sorted(kind for _, kind, _ in out) == ["made", "reused"]
    assert [text for *_, text in out] == ["model a", "model a"]  # neither saw a half artifact
    calls = (tmp_path / "calls.log").read_text().splitlines()
    (maker,) = [pid for pid, kind, _ in out if kind == "made"]
    assert calls == [f"a {maker}"]  # made once, by the job that says so
    folder = tmp_path / "artifacts" / "model"
    assert json.loads((folder / "fingerprint.json").read_text()) == {"lr": 0.1, "tag": "a"}
    assert lock_path(folder) == tmp_path / "artifacts" / ".model.lock"
    assert sorted(p.name for p in folder.iterdir()) == [DONE, "fingerprint.json", "weights.txt"]


def test_a_racer_with_another_configuration_gets_the_clear_error(tmp_path):
    out = race(tmp_path, {"tag": "a", "lr": 0.1}, {"tag": "a", "lr": 0.2})
    assert sorted(kind for _, kind, _ in out) == ["error", "made"]
    (message,) = [text for _, kind, text in out if kind == "error"]
    assert "holds a toy model made with a different lr configuration" in message
    assert "task.artifacts_dir" in message
    assert len((tmp_path / "calls.log").read_text().splitlines()) == 1


def test_a_killed_maker_leaves_nothing_trusted_and_the_waiting_job_makes_it(tmp_path):
    folder, calls = tmp_path / "artifacts" / "model", tmp_path / "calls.log"
    wanted = {"tag": "a", "lr": 0.1}
    barrier, results = CTX.Barrier(1), CTX.Queue()
    dying = CTX.Process(target=racer, args=(folder, wanted, calls, barrier, results, 0, True))
    dying.start()
    deadline = time.monotonic() + 120  # a safety net only: the test waits on the file
    while not (tmp_path / "artifacts" / "dying").exists():
        assert dying.is_alive() and time.monotonic() < deadline
        time.sleep(0.05)
    # The maker holds the lock with a whole-looking artifact (its done file) but no seal.
    assert (folder / DONE).exists() and not (folder / "fingerprint.json").exists()
    waiter = CTX.Process(target=racer, args=(folder, wanted, calls, CTX.Barrier(1), results, 0))
    waiter.start()
    time.sleep(0.5)  # the waiter reaches the lock (if not, it simply finds it free later)
    assert waiter.is_alive() and results.empty()  # waiting, not reusing the unsealed artifact
    os.kill(dying.pid, signal.SIGKILL)
    dying.join(timeout=60)
    assert dying.exitcode == -signal.SIGKILL
    pid, kind, text = results.get(timeout=120)
    waiter.join(timeout=60)
    assert (pid, kind, text) == (waiter.pid, "made", "model a")
    assert [line.split()[1] for line in calls.read_text().splitlines()] == [
        str(dying.pid),
        str(waiter.pid),
    ]
    assert json.loads((folder / "fingerprint.json").read_text()) == wanted


def test_a_maker_that_writes_no_done_file_seals_nothing(tmp_path):
    folder = tmp_path / "model"
    with pytest.raises(ArtifactsError, match=r"ended without writing done\.json"):
        ensure_artifact(folder, {"a": 1}, DONE, lambda: folder.mkdir(), what="toy model")
    assert not (folder / "fingerprint.json").exists()
    assert ensure_artifact(folder, {"a": 1}, DONE, lambda: (folder / DONE).touch(), what="toy")
    assert not ensure_artifact(folder, {"a": 1}, DONE, pytest.fail, what="toy model")


def split_racer(dataset, checklist, barrier, results):
    barrier.wait()
    try:
        results.put((os.getpid(), str(preference_split(dataset, checklist))))
    except Exception as err:  # e.g. "held by another process", without the lock
        results.put((os.getpid(), f"{type(err).__name__}: {err}"))


def test_two_jobs_needing_one_split_render_it_once(tmp_path):
    cfg = compose_config(tmp_path, "dataset.num_prompts=6", "dataset.chunk_size=2")
    dataset, checklist = OmegaConf.to_object(cfg.dataset), Checklist.from_config(cfg.dimensions)
    barrier, results = CTX.Barrier(2), CTX.Queue()
    procs = [
        CTX.Process(target=split_racer, args=(dataset, checklist, barrier, results))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    out = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert [text for _, text in out] == [dataset.out_dir, dataset.out_dir]
    assert read_items(dataset.out_dir).num_rows == 18  # every item once: 6 prompts x 3 renders
