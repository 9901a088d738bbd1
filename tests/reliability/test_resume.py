"""Resume integrity of the four resumable stages (make_data, annotate, score, sample).

Each stage is killed after its first part (in process: an exception from the progress callback;
make_data also as a real process, with SIGKILL) and resumed; resumed again with a changed chunk
size, model or item list it is refused naming the change, and with ``overwrite`` it gives the
full table of a fresh run. A folder that another process holds is refused; a folder that holds an
item twice is an error; and however parts are cut and interrupted, each item lands once.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import dataclasses
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from tests.conftest import ROOT, compose_config
from tests.tiny import TINY
from vrexp.backbones import build_backbone, load_backbone
from vrexp.checklist import Checklist
from vrexp.data.annotations import AnnotationsError, read_annotations
from vrexp.data.atomic import LOCK_FILE, OutputClaimError, claim_output, read_manifest
from vrexp.data.items import folder_items
from vrexp.data.parts import PartsError, present_keys, read_parts, write_parts
from vrexp.data.samples import SamplesError, read_samples
from vrexp.data.synthworld import SplitError, make_split, read_items
from vrexp.generators import build_generator
from vrexp.generators.sampling import sample_candidates
from vrexp.media import save_media
from vrexp.reward import LinearReward
from vrexp.reward.scorer import VisionReward
from vrexp.reward.scoring import ScoringError, read_scores, score_items
from vrexp.tasks.annotate import AnnotateError, annotate_items

NUM_ITEMS, CHUNK, OTHER_CHUNK = 6, 2, 3
PROMPTS = [f"{n} red circles on a sky background" for n in ("one", "two", "three")] * 2
STAGES = ["make_data", "annotate", "score", "sample"]

pytestmark = pytest.mark.usefixtures("one_thread")


class Interrupted(Exception):
    """Raised from a progress callback: the job dies after its first part."""


def interrupt(*_):
    raise Interrupted


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A tiny checklist model and another one (other seed), a VisionReward, a tiny generator and
    a perturbed copy, and six images with their prompts."""
    root = tmp_path_factory.mktemp("resume")
    cfg = compose_config(
        root, *TINY, f"dataset.num_prompts={NUM_ITEMS}", "dataset.renders_per_prompt=2"
    )
    checklist = Checklist.from_config(cfg.dimensions)
    for name, seed in (("model_a", 0), ("model_b", 1)):
        backbone_cfg = OmegaConf.to_object(cfg.backbone)
        backbone_cfg.tiny.seed = seed
        build_backbone(backbone_cfg).save_pretrained(root / name)
    features = [q for q in checklist.questions if q.kind != "presence"]
    weights = np.random.default_rng(0).uniform(0.1, 1.0, len(features))
    reward = VisionReward(load_backbone(root / "model_a"), LinearReward(checklist, weights))
    reward.save_pretrained(root / "reward")
    generator = build_generator(OmegaConf.to_object(cfg.generator)).eval()
    other_generator = copy.deepcopy(generator)
    with torch.no_grad():
        next(other_generator.parameters()).add_(0.1)
    media = root / "media"
    rng = np.random.default_rng(0)
    for i in range(NUM_ITEMS):
        save_media(media / f"{i}.png", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    return SimpleNamespace(
        root=root,
        cfg=cfg,
        dataset=OmegaConf.to_object(cfg.dataset),
        checklist=checklist,
        reward=reward,
        generator=generator,
        other_generator=other_generator,
        media=media,
    )


def write_prompts(folder: Path, edited: bool) -> None:
    prompts = list(PROMPTS)
    if edited:
        prompts[4] = "a prompt edited after the first run"
    with (folder / "prompts.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["media", "prompt"])
        writer.writerows([f"{i}.png", p] for i, p in enumerate(prompts))


def tree(folder: Path) -> dict[str, str]:
    """Every file of a folder (the lock file aside) by relative path and content digest."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != LOCK_FILE
    }


class Stage:
    """One stage run on the module's inputs, in a test's own copies of the files it changes.
    ``change``: "model" (replaced at the same path, or another generator), "items" (the
    prompts edited, or for make_data a dataset setting); the chunk size is a parameter."""

    error: type[Exception]
    parts: str = "part-*.parquet"

    def __init__(self, env: SimpleNamespace, tmp_path: Path) -> None:
        self.env, self.tmp = env, tmp_path
        self.media = tmp_path / "media"
        shutil.copytree(env.media, self.media)
        write_prompts(self.media, edited=False)

    def apply(self, change: str | None) -> None:
        if change == "items":
            write_prompts(self.media, edited=True)

    def part_names(self, out: Path) -> list[str]:
        return sorted(p.name for p in out.glob(self.parts))


class MakeData(Stage):
    error = SplitError
    parts = "items/part-*.parquet"
    expected: ClassVar[dict[str, str]] = {
        "chunk_size": r"dataset\.chunk_size changed from 2 to 3",
        "items": r"dataset\.face_rate changed from 0\.4 to 0\.9",
    }

    def config(self, out: Path, chunk_size: int, change: str | None):
        return dataclasses.replace(
            self.env.dataset,
            out_dir=str(out),
            chunk_size=chunk_size,
            face_rate=0.9 if change == "items" else self.env.dataset.face_rate,
        )

    def run(self, out, chunk_size=CHUNK, change=None, overwrite=False, progress=None):
        return make_split(
            self.config(out, chunk_size, change),
            self.env.checklist,
            overwrite=overwrite,
            progress=progress,
        )

    def read(self, out):
        return tree(out), read_items(out).to_pydict()


class Annotate(Stage):
    error = AnnotateError
    expected: ClassVar[dict[str, str]] = {
        "chunk_size": r"task\.chunk_size changed from 2 to 3",
        "model": r"the model at \S+model changed \(digest [0-9a-f]{12} -> [0-9a-f]{12}\)",
        "items": r"the items \(prompts file or split\) changed",
    }

    def __init__(self, env, tmp_path):
        super().__init__(env, tmp_path)
        self.model_dir = tmp_path / "model"
        shutil.copytree(env.root / "model_a", self.model_dir)

    def apply(self, change):
        super().apply(change)
        if change == "model":  # the user trains another model into the same folder
            shutil.copytree(self.env.root / "model_b", self.model_dir, dirs_exist_ok=True)

    def run(self, out, chunk_size=CHUNK, change=None, overwrite=False, progress=None):
        self.apply(change)
        return annotate_items(
            load_backbone(self.model_dir),
            self.env.checklist,
            folder_items(self.media, "prompts.csv"),
            out,
            batch_size=4,
            chunk_size=chunk_size,
            overwrite=overwrite,
            progress=progress,
        )

    def read(self, out):
        return read_annotations(out).to_pydict()


class Score(Stage):
    error = ScoringError
    expected: ClassVar[dict[str, str]] = {
        "chunk_size": r"task\.chunk_size changed from 2 to 3",
        "model": r"the reward's checklist model at \S+checklist_model changed \(digest",
        "items": r"the items \(media and prompts\) changed",
    }

    def __init__(self, env, tmp_path):
        super().__init__(env, tmp_path)
        self.reward_dir = tmp_path / "reward"
        shutil.copytree(env.root / "reward", self.reward_dir)

    def apply(self, change):
        super().apply(change)
        if change == "model":
            model = self.reward_dir / "checklist_model"
            shutil.copytree(self.env.root / "model_b", model, dirs_exist_ok=True)

    def run(self, out, chunk_size=CHUNK, change=None, overwrite=False, progress=None):
        self.apply(change)
        return score_items(
            VisionReward.from_pretrained(self.reward_dir, device="cpu"),
            folder_items(self.media, "prompts.csv"),
            out,
            chunk_size=chunk_size,
            overwrite=overwrite,
            progress=progress,
        )

    def read(self, out):
        return read_scores(out)[0].to_pydict()


class Sample(Stage):
    error = OutputClaimError
    expected: ClassVar[dict[str, str]] = {
        "chunk_size": r"task\.chunk_size changed from 2 to 3",
        "model": r"the generator changed \(digest",
        "items": r"the prompts changed",
    }

    def run(self, out, chunk_size=CHUNK, change=None, overwrite=False, progress=None):
        prompts = list(PROMPTS)
        if change == "items":
            prompts[4] = "a prompt edited after the first run"
        generator = self.env.other_generator if change == "model" else self.env.generator
        return sample_candidates(
            generator,
            self.env.reward,
            prompts,
            out,
            candidates=2,
            seed=3,
            batch_size=4,
            chunk_size=chunk_size,
            overwrite=overwrite,
            progress=progress,
        )

    def read(self, out):
        table, names = read_samples(out)
        files = tree(out / "media")
        return table.drop_columns(["media_path"]).to_pydict(), names, files


STAGE_TYPES = {"make_data": MakeData, "annotate": Annotate, "score": Score, "sample": Sample}
CHANGES = [(s, c) for s in STAGES for c in STAGE_TYPES[s].expected]


@pytest.mark.parametrize("stage", STAGES)
def test_a_killed_job_resumes_to_the_table_of_an_uninterrupted_one(stage, env, tmp_path):
    job = STAGE_TYPES[stage](env, tmp_path)
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    job.run(whole)
    with pytest.raises(Interrupted):
        job.run(cut, progress=interrupt)
    assert len(job.part_names(cut)) == 1 < len(job.part_names(whole))
    calls = []
    job.run(cut, progress=lambda *a: calls.append(a))
    assert len(calls) == 1 + (NUM_ITEMS - CHUNK) // CHUNK  # the items found, then the rest
    assert job.read(cut) == job.read(whole)
    assert job.part_names(cut) == job.part_names(whole)


@pytest.mark.parametrize(
    ("reader", "error"),
    [
        (lambda out: read_items(out), SplitError),
        (read_annotations, AnnotationsError),
        (read_samples, SamplesError),
    ],
    ids=["make_data", "annotate", "sample"],
)
def test_reading_an_interrupted_folder_is_an_error(reader, error, env, tmp_path):
    stage = {SplitError: "make_data", AnnotationsError: "annotate", SamplesError: "sample"}[error]
    job = STAGE_TYPES[stage](env, tmp_path)
    with pytest.raises(Interrupted):
        job.run(tmp_path / "cut", progress=interrupt)
    with pytest.raises(error, match=rf"holds {CHUNK} of the {NUM_ITEMS} items .* interrupted"):
        reader(tmp_path / "cut")


@pytest.mark.parametrize(("stage", "change"), CHANGES)
def test_a_resume_with_a_changed_input_or_setting_is_refused_naming_it(
    stage, change, env, tmp_path
):
    job = STAGE_TYPES[stage](env, tmp_path)
    out = tmp_path / "out"
    with pytest.raises(Interrupted):
        job.run(out, progress=interrupt)
    kept = tree(out)
    changed = {"chunk_size": OTHER_CHUNK} if change == "chunk_size" else {"change": change}
    with pytest.raises(job.error, match=job.expected[change]) as refused:
        job.run(out, **changed)
    message = str(refused.value)
    assert str(out) in message and "task.overwrite=true" in message
    assert tree(out) == kept  # nothing written, nothing mixed in
    job.run(out, overwrite=True, **changed)
    job.run(tmp_path / "fresh", **changed)
    assert job.read(out) == job.read(tmp_path / "fresh")


@pytest.fixture(scope="module")
def held(tmp_path_factory):
    """Output folders that another process holds (claimed, and kept until the module ends)."""
    root = tmp_path_factory.mktemp("held")
    folders = {stage: root / stage for stage in STAGES}
    script = (
        "import sys, contextlib\n"
        "from vrexp.data.atomic import claim_output\n"
        "with contextlib.ExitStack() as stack:\n"
        "    for d in sys.argv[1:]:\n"
        "        stack.enter_context(claim_output(d, {}, False, stale=(), what='x'))\n"
        "    print('held', flush=True)\n"
        "    sys.stdin.read()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script, *map(str, folders.values())],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        text=True,
    )
    assert holder.stdout.readline() == "held\n"
    yield folders
    holder.stdin.close()
    assert holder.wait(timeout=30) == 0


@pytest.mark.parametrize("stage", STAGES)
def test_a_folder_that_another_process_holds_is_refused_by_name(stage, env, held, tmp_path):
    job = STAGE_TYPES[stage](env, tmp_path)
    folder = held[stage]
    with pytest.raises(job.error, match=rf"{folder} is held by another process"):
        job.run(folder)
    assert not job.part_names(folder)


def test_of_two_claims_at_once_one_wins_and_the_lock_goes_with_the_job(tmp_path):
    claim = {"stale": ("part-*.parquet",), "what": "annotations"}
    refused = pytest.raises(OutputClaimError, match=rf"{tmp_path} is held by another process")
    with claim_output(tmp_path, {"a": 1}, False, **claim), refused:  # noqa: SIM117
        with claim_output(tmp_path, {"a": 1}, False, **claim):
            pass
    with claim_output(tmp_path, {"a": 1}, False, **claim):  # released at the end of the job
        pass
    with (
        pytest.raises(RuntimeError, match="boom"),
        claim_output(tmp_path, {"a": 1}, False, **claim),
    ):
        raise RuntimeError("boom")
    with claim_output(tmp_path, {"a": 1}, False, **claim):  # and when the job fails
        pass


@pytest.mark.parametrize("stage", ["make_data", "annotate", "sample", "score"])
def test_a_folder_holding_an_item_twice_is_an_error(stage, env, tmp_path):
    job = STAGE_TYPES[stage](env, tmp_path)
    out = tmp_path / "out"
    job.run(out)
    first = sorted(out.glob(job.parts))[0]
    shutil.copy(first, first.with_name("part-99999999.parquet"))
    match = rf"{first.name} and part-99999999\.parquet"
    if stage == "score":  # its reader reads the gathered table; the rerun's gather refuses
        with pytest.raises(ScoringError, match=match):
            job.run(out)
    else:
        with pytest.raises(Exception, match=match) as err:
            job.read(out)
        assert "is in two parts" in str(err.value)


def test_make_data_killed_with_sigkill_resumes_byte_identical(env, tmp_path):
    """A real kill -9 of a rendering process after its first part: the lock goes with the
    process, and the rerun finishes the split exactly as an uninterrupted run writes it."""
    job = MakeData(env, tmp_path)
    out = tmp_path / "killed"
    config = OmegaConf.structured(job.config(out, 1, None))
    config.num_prompts = 30
    OmegaConf.save(config, tmp_path / "dataset.yaml")
    env.checklist.to_yaml(tmp_path / "checklist.yaml")
    script = (
        "import sys\n"
        "from omegaconf import OmegaConf\n"
        "from vrexp.checklist import Checklist\n"
        "from vrexp.configs.dataset import SynthWorldConfig\n"
        "from vrexp.data.synthworld import make_split\n"
        "cfg = OmegaConf.merge(OmegaConf.structured(SynthWorldConfig), OmegaConf.load(sys.argv[1]))\n"
        "make_split(OmegaConf.to_object(cfg), Checklist.from_yaml(sys.argv[2]))\n"
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            script,
            str(tmp_path / "dataset.yaml"),
            str(tmp_path / "checklist.yaml"),
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
    )
    deadline = time.monotonic() + 120
    while not list(out.glob("items/part-*.parquet")):
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL
    assert not (out / "summary.json").exists()
    assert 1 <= len(job.part_names(out)) < 30
    dataset = OmegaConf.to_object(config)
    make_split(dataset, env.checklist)
    dataset.out_dir = str(tmp_path / "whole")
    make_split(dataset, env.checklist)
    hidden = {k for k in tree(out) if Path(k).name.startswith(".")}
    assert not hidden  # no half-written temporary file was left behind or gathered
    assert tree(out) == tree(tmp_path / "whole")


@settings(max_examples=20, deadline=None)
@given(
    num_items=st.integers(1, 12),
    runs=st.lists(st.tuples(st.integers(1, 5), st.integers(0, 4)), min_size=1, max_size=4),
    last_chunk=st.integers(1, 5),
)
def test_parts_keyed_by_item_never_lose_or_duplicate_an_item(num_items, runs, last_chunk):
    """Whatever chunk sizes the interrupted runs used (the manifest check aside), the folder
    ends with every item exactly once: rows, or skipped records for odd ids."""

    def build(ids):
        kept = [i for i in ids if i % 2 == 0]
        table = pa.table(
            {
                "item_id": pa.array(kept, pa.int64()),
                "x": pa.array([k * 10 for k in kept], pa.int64()),
            }
        )
        return table, [{"item_id": i} for i in ids if i % 2]

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        items = list(range(num_items))
        for chunk_size, stop_after in runs:
            written = []

            def progress(n, written=written, stop_after=stop_after):
                written.append(n)
                if len(written) > stop_after:
                    raise Interrupted

            with contextlib.suppress(Interrupted):
                write_parts(folder, items, chunk_size, build, progress, key=int)
        skipped = write_parts(folder, items, last_chunk, build, key=int)
        table = read_parts(folder, "item_id", ("item_id",))
        assert table.column("item_id").to_pylist() == list(range(0, num_items, 2))
        assert table.column("x").to_pylist() == [i * 10 for i in range(0, num_items, 2)]
        assert [s["item_id"] for s in skipped] == list(range(1, num_items, 2))
        assert sorted(present_keys(folder, "item_id")) == items


def test_an_item_list_with_a_repeated_id_or_a_foreign_part_is_refused(tmp_path):
    def build(ids):
        return pa.table({"item_id": pa.array(list(ids), pa.int64())}), []

    with pytest.raises(PartsError, match=r"names item_id \[2\] more than once"):
        write_parts(tmp_path, [1, 2, 2], 2, build, key=int)
    write_parts(tmp_path, [1, 2, 3], 2, build, key=int)
    with pytest.raises(PartsError, match=r"holds item_id \[3\] that this job's items do not"):
        write_parts(tmp_path, [1, 2], 2, build, key=int)


def test_a_resume_reuses_the_recorded_digests_of_unchanged_model_files(env, tmp_path, monkeypatch):
    """Hashing multi-GB weights costs seconds: a resume trusts the manifest's digest of a file
    whose size and mtime are unchanged, and hashes a replaced one again."""
    from vrexp.data import digests

    job = Annotate(env, tmp_path)
    out = tmp_path / "out"
    with pytest.raises(Interrupted):
        job.run(out, progress=interrupt)
    recorded = read_manifest(out)["model"]
    monkeypatch.setattr(digests, "_FILE_DIGESTS", {})  # a new process
    digests.remember(read_manifest(out))
    opened = []
    real_open = Path.open
    monkeypatch.setattr(
        Path, "open", lambda self, *a, **k: opened.append(self) or real_open(self, *a, **k)
    )
    assert digests.folder_digest(job.model_dir)["sha256"] == recorded["sha256"]
    assert opened == []
    job.apply("model")
    assert digests.folder_digest(job.model_dir)["sha256"] != recorded["sha256"]
    assert {p.name for p in opened} >= {"model.safetensors", "config.json"}
