"""Sharded inference (docs/sharding.md): ``annotate``, ``score`` and ``sample`` split across
processes, each shard resumable on its own, and a merge that equals a single-process run.

The split is checked with hypothesis; each stage's shards, run one after the other in this
process, merge into the part files of a single-process run (byte for byte); readers and the
merge refuse an incomplete shard set naming the shards. The slow tests run real processes: a
``run.py`` shard killed with SIGKILL and resumed alone, ``torchrun --nproc_per_node 2`` for
annotate and score, and two sample shards at once.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from tests.conftest import ROOT, compose_config
from tests.tiny import TINY
from vrexp.backbones import build_backbone, load_backbone
from vrexp.checklist import Checklist
from vrexp.data.annotations import AnnotationsError, read_annotations
from vrexp.data.atomic import LOCK_FILE
from vrexp.data.items import folder_items
from vrexp.data.samples import SamplesError, read_samples
from vrexp.data.shards import MERGE, Shard, ShardSpecError, parse_shard
from vrexp.data.synthworld import synthworld_judge
from vrexp.generators import build_generator
from vrexp.generators.sampling import merge_samples, sample_candidates
from vrexp.media import save_media
from vrexp.reward import LinearReward
from vrexp.reward.scorer import VisionReward
from vrexp.reward.scoring import ScoringError, merge_scores, read_scores, score_items
from vrexp.tasks import run_task
from vrexp.tasks.annotate import AnnotateError, annotate_items, merge_annotations

NUM_ITEMS, CHUNK = 7, 2  # 4 parts: shard 0/2 takes items 0-3, shard 1/2 items 4-6
HALVES = [Shard(0, 2), Shard(1, 2)]

pytestmark = pytest.mark.usefixtures("one_thread")


class Interrupted(Exception):
    """Raised from a progress callback: the shard dies after its first part."""


def interrupt(*_):
    raise Interrupted


def write_media(folder: Path, count: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for i in range(count):
        save_media(folder / f"{i}.png", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    with (folder / "prompts.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["media", "prompt"])
        writer.writerows([f"{i}.png", f"{i % 3 + 1} red circles on a sky"] for i in range(count))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A tiny checklist model, a VisionReward on it, a tiny generator and seven images."""
    root = tmp_path_factory.mktemp("shards")
    cfg = compose_config(root, *TINY)
    checklist = Checklist.from_config(cfg.dimensions)
    build_backbone(OmegaConf.to_object(cfg.backbone)).save_pretrained(root / "model")
    features = [q for q in checklist.questions if q.kind != "presence"]
    weights = np.random.default_rng(0).uniform(0.1, 1.0, len(features))
    reward = VisionReward(load_backbone(root / "model"), LinearReward(checklist, weights))
    reward.save_pretrained(root / "reward")
    write_media(root / "media", NUM_ITEMS)
    return SimpleNamespace(
        root=root,
        checklist=checklist,
        reward=VisionReward.from_pretrained(root / "reward", device="cpu"),
        generator=build_generator(OmegaConf.to_object(cfg.generator)).eval(),
        items=folder_items(root / "media", "prompts.csv"),
    )


def files(folder: Path, pattern: str = "part-*.parquet") -> dict[str, str]:
    """The files of a folder matching ``pattern``, by relative path and content digest."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.glob(pattern))
        if p.is_file() and p.name != LOCK_FILE
    }


# Each stage: run(out, shard, progress) writes it, merge(out) merges it, read(out) reads it back.
def run_annotate(env, out, shard=None, progress=None, chunk_size=CHUNK):
    return annotate_items(
        load_backbone(env.root / "model"),
        env.checklist,
        env.items,
        out,
        batch_size=4,
        chunk_size=chunk_size,
        progress=progress,
        shard=shard,
    )


def run_score(env, out, shard=None, progress=None, chunk_size=CHUNK):
    return score_items(
        env.reward, env.items, out, chunk_size=chunk_size, progress=progress, shard=shard
    )


PROMPTS = [f"{n} red circles on a sky background" for n in ("one", "two", "three", "four")] * 2


def run_sample(env, out, shard=None, progress=None, chunk_size=CHUNK, judge=None):
    return sample_candidates(
        env.generator,
        env.reward,
        PROMPTS[:NUM_ITEMS],
        out,
        candidates=2,
        seed=3,
        batch_size=4,
        chunk_size=chunk_size,
        judge=judge,
        progress=progress,
        shard=shard,
    )


STAGES = {
    "annotate": (run_annotate, merge_annotations, lambda o: read_annotations(o).to_pydict()),
    "score": (run_score, merge_scores, lambda o: read_scores(o)[0].to_pydict()),
    "sample": (  # media paths are absolute; the media files are compared as files
        run_sample,
        merge_samples,
        lambda o: read_samples(o)[0].drop_columns(["media_path"]).to_pydict(),
    ),
}
ERRORS = {"annotate": AnnotationsError, "score": ScoringError, "sample": SamplesError}


@settings(max_examples=200, deadline=None)
@given(num_items=st.integers(0, 300), chunk_size=st.integers(1, 40), count=st.integers(1, 70))
def test_every_item_is_in_exactly_one_shard_in_whole_parts(num_items, chunk_size, count):
    items = list(range(num_items))
    shards = [Shard(i, count).split(items, chunk_size) for i in range(count)]
    assert [item for shard in shards for item in shard] == items  # once each, in list order
    parts = [-(-len(s) // chunk_size) for s in shards]
    assert max(parts) - min(parts) <= 1  # balanced to one part
    whole = {tuple(items[i : i + chunk_size]) for i in range(0, num_items, chunk_size)}
    for shard in shards:  # a shard's parts are parts of the single-process run
        assert {tuple(shard[i : i + chunk_size]) for i in range(0, len(shard), chunk_size)} <= whole


@pytest.mark.parametrize(
    ("spec", "env", "expected"),
    [
        ("3/64", {}, Shard(3, 64)),
        (" 0 / 1 ", {}, Shard(0, 1)),
        ("merge", {}, MERGE),
        (None, {}, None),
        (None, {"WORLD_SIZE": "1", "RANK": "0"}, None),
        (None, {"WORLD_SIZE": "4", "RANK": "2"}, Shard(2, 4, "torchrun")),
        (
            "slurm",
            {
                "SLURM_ARRAY_TASK_ID": "9",
                "SLURM_ARRAY_TASK_COUNT": "64",
                "SLURM_ARRAY_TASK_MIN": "1",
            },
            Shard(8, 64, "slurm"),
        ),
    ],
)
def test_a_shard_spec_names_its_shard(spec, env, expected):
    assert parse_shard(spec, env) == expected


@pytest.mark.parametrize(
    ("spec", "env", "message"),
    [
        ("5/4", {}, r"task\.shard='5/4' names no shard; valid forms: I/N with 0 <= I < N"),
        ("4/4", {}, r"task\.shard='4/4' names no shard"),
        ("-1/4", {}, r"task\.shard='-1/4' names no shard"),
        ("1/0", {}, r"task\.shard='1/0' names no shard"),
        ("3", {}, r"task\.shard='3' names no shard"),
        ("half", {}, r"task\.shard='half' names no shard.*slurm.*merge"),
        ("slurm", {}, r"task\.shard=slurm reads SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT"),
        (
            "slurm",
            {"SLURM_ARRAY_TASK_ID": "70", "SLURM_ARRAY_TASK_COUNT": "64"},
            r"SLURM_ARRAY_TASK_ID=70 is not one of 64 consecutive array ids",
        ),
        ("1/2", {"WORLD_SIZE": "2", "RANK": "1"}, r"task\.shard='1/2' given in a torchrun launch"),
        (None, {"WORLD_SIZE": "two"}, r"WORLD_SIZE='two' is not an integer"),
    ],
)
def test_an_invalid_shard_spec_is_refused_naming_the_key_and_the_valid_forms(spec, env, message):
    with pytest.raises(ShardSpecError, match=message):
        parse_shard(spec, env)


@pytest.mark.parametrize("stage", list(STAGES))
def test_shards_merge_into_the_part_files_of_a_single_process_run(stage, env, tmp_path):
    run, _, read = STAGES[stage]
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    run(env, single)
    assert run(env, sharded, HALVES[0])["merged"] is False  # shard 1/2 has not run
    with pytest.raises(
        ERRORS[stage], match=r"holds 2 shards that are not merged: shard 1/2 has not"
    ):
        read(sharded)
    assert run(env, sharded, HALVES[1])["merged"] is True  # the last shard merges
    assert read(sharded) == read(single)
    pattern = "**/*" if stage == "sample" else "*"  # media too; the manifest and skipped.json
    merged = {k: v for k, v in files(sharded, pattern).items() if not k.startswith("shards")}
    assert merged == files(single, pattern)
    assert sorted(p.name for p in (sharded / "shards").iterdir()) == ["0-of-2", "1-of-2"]
    calls = []  # the merged folder is a finished single-process folder: a rerun has no work
    run(env, sharded, progress=calls.append)
    assert calls == [NUM_ITEMS]


def test_a_shard_interrupted_resumes_alone_and_the_merge_names_unfinished_shards(env, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(AnnotateError, match="holds no shards"):
        merge_annotations(out)
    with pytest.raises(Interrupted):
        run_annotate(env, out, HALVES[1], progress=interrupt)
    with pytest.raises(
        AnnotateError, match=r"shard 0/2 has not started; shard 1/2 \(2 of 3 items\) is unfin"
    ):
        merge_annotations(out)
    run_annotate(env, out, HALVES[0])
    kept = files(out / "shards" / "0-of-2")
    with pytest.raises(
        AnnotationsError, match=r"shard 1/2 \(2 of 3 items\) is unfinished \(stopped, or still"
    ):
        read_annotations(out)
    calls = []
    assert run_annotate(env, out, HALVES[1], progress=calls.append)["merged"] is True
    assert calls == [2, 1]  # the items it held, then only the missing one
    assert files(out / "shards" / "0-of-2") == kept  # the other shard untouched
    run_annotate(env, tmp_path / "single")
    assert read_annotations(out).to_pydict() == read_annotations(tmp_path / "single").to_pydict()


def test_shards_made_otherwise_or_of_two_splits_are_not_merged(env, tmp_path):
    out = tmp_path / "out"
    run_score(env, out, HALVES[0])
    otherwise = r"shard 1/2 was made otherwise than shard 0/2: task\.chunk_size changed from 2 to 3"
    with pytest.raises(ScoringError, match=otherwise):  # the last shard's merge fails loudly
        run_score(env, out, HALVES[1], chunk_size=3)
    assert files(out / "shards" / "1-of-2")  # its own parts are kept
    with pytest.raises(ScoringError, match=otherwise):
        merge_scores(out)
    assert not (out / "manifest.json").exists()
    assert run_score(env, out, Shard(0, 1))["merged"] is True  # a set of its own, complete
    run_score(env, tmp_path / "single")
    assert read_scores(out)[0].to_pydict() == read_scores(tmp_path / "single")[0].to_pydict()
    with pytest.raises(ScoringError, match=r"holds shards of 2 splits \(1, 2 shards\)"):
        merge_scores(out)  # which set to merge is not said


def shard_overrides(env, out: Path, shard: str) -> list[str]:
    return [
        "task=annotate",
        f"task.model_dir={env.root / 'model'}",
        "dataset=media_folder",
        f"dataset.root={env.root / 'big'}",
        f"task.out_dir={out}",
        f"task.shard={shard}",
        "task.chunk_size=1",
        "task.batch_size=4",
        "logger=none",
    ]


def child_env() -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "SLURM_"))}
    return {**keep, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_a_shard_killed_with_sigkill_resumes_alone_and_merges(env, tmp_path, caplog):
    """Shard 1/2 as a real ``run.py`` process, killed with SIGKILL after its first part; shard
    0/2 (the same CLI task, in this process) finishes beside it and waits. The rerun of shard 1/2
    answers only its missing items and merges: the part files of one process answering all."""
    big = env.root / "big"
    if not big.is_dir():
        write_media(big, 24, seed=1)
    out = tmp_path / "out"
    killed = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "run.py"),
            *shard_overrides(env, out, "1/2"),
            f"paths.root_dir={tmp_path}",
            f"hydra.run.dir={tmp_path}/run-killed",
        ],
        env=child_env(),
    )
    caplog.set_level(logging.INFO)
    assert run_task(compose_config(tmp_path, *shard_overrides(env, out, "0/2"))) is None
    assert "the last shard to finish merges them" in caplog.text
    folder = out / "shards" / "1-of-2"
    deadline = time.monotonic() + 240
    while not list(folder.glob("part-*.parquet")):
        assert killed.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait(timeout=30) == -signal.SIGKILL
    kept = files(out / "shards" / "0-of-2")
    with pytest.raises(AnnotationsError, match=r"shard 1/2 \([0-9]+ of 12 items\) is unfinished"):
        read_annotations(out)
    caplog.clear()
    run_task(compose_config(tmp_path, *shard_overrides(env, out, "1/2")))
    assert "every shard complete, merged into" in caplog.text
    assert files(out / "shards" / "0-of-2") == kept  # the other shard untouched
    single = tmp_path / "single"
    annotate_items(
        load_backbone(env.root / "model"),
        env.checklist,
        folder_items(big, "prompts.csv"),
        single,
        batch_size=4,
        chunk_size=1,
    )
    assert read_annotations(out).to_pydict() == read_annotations(single).to_pydict()
    assert files(out, "part-*.parquet") == files(single, "part-*.parquet")  # the same files


TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "stage",
    # CI's budget: score shards and merges through the same code as annotate
    ["annotate", pytest.param("score", marks=pytest.mark.heavy)],
)
def test_torchrun_ranks_answer_their_shards_and_rank_zero_merges(stage, env, tmp_path):
    """``torchrun --nproc_per_node 2 run.py task=<stage>`` on CPU: each rank a shard, rank zero
    merges after the others finish, and the table equals one process's."""
    out = tmp_path / stage
    model = f"task.model_dir={env.root / 'model'}"
    reward = f"task.reward_dir={env.root / 'reward'}"
    done = subprocess.run(
        [
            *TORCHRUN,
            "--master_port",
            str(29500 + os.getpid() % 1000),
            str(ROOT / "run.py"),
            f"task={stage}",
            model if stage == "annotate" else reward,
            "dataset=media_folder",
            f"dataset.root={env.root / 'media'}",
            f"task.out_dir={out}",
            f"task.chunk_size={CHUNK}",
            "logger=none",
            f"paths.root_dir={tmp_path}",
            f"hydra.run.dir={tmp_path}/run",
        ],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    log = (tmp_path / "run" / "run.log").read_text()
    assert log.count("merged 2 shards into") == 1  # one merge, told once
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["0-of-2", "1-of-2"]
    single = tmp_path / "single"
    run, _, read = STAGES[stage]
    run(env, single)
    assert read(out) == read(single)
    assert files(out) == files(single)
    if stage == "score":
        assert (out / "report.html").is_file()


@pytest.mark.slow
def test_sample_shards_as_two_array_jobs_merge_into_one_process_samples(env, tmp_path):
    """``task=sample task.shard=0/2`` as a ``run.py`` process and ``1/2`` (the same CLI task)
    in this process at the same time (tiny_sd at smoke size): the last to finish merges;
    media, parts and table equal one process's."""
    out = tmp_path / "samples"
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS[:NUM_ITEMS]) + "\n")

    def overrides(shard: str) -> list[str]:
        return [
            "task=sample",
            "task.generator_dir=null",
            f"task.reward_dir={env.root / 'reward'}",
            f"task.prompts.file={prompts}",
            "task.candidates=2",
            "task.seed=3",
            "task.batch_size=4",
            f"task.chunk_size={CHUNK}",
            f"task.out_dir={out}",
            f"task.shard={shard}",
            *TINY,
        ]

    other = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "run.py"),
            *overrides("0/2"),
            f"paths.root_dir={tmp_path}",
            f"hydra.run.dir={tmp_path}/run-0",
        ],
        env=child_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    run_task(compose_config(tmp_path, *overrides("1/2")))
    assert other.wait(timeout=300) == 0, other.stderr.read()[-3000:]
    assert (out / "manifest.json").is_file()  # merged by whichever finished last
    single = tmp_path / "single"  # run.py's default dataset brings the SynthWorld judge
    judge = synthworld_judge(OmegaConf.to_object(compose_config(tmp_path, *TINY).dataset))
    run_sample(env, single, judge=judge)
    assert STAGES["sample"][2](out) == STAGES["sample"][2](single)

    def made(folder: Path) -> dict[str, str]:  # the manifests differ: run.py's records the judge
        return {k: v for k, v in files(folder, "**/*").items() if k != "manifest.json"}

    assert {k: v for k, v in made(out).items() if not k.startswith("shards")} == made(single)


def test_shards_that_finish_together_merge_once(env, tmp_path, caplog):
    """Two merges at the same moment (two shards ending together): the folder's lock makes
    them take turns; the second finds the work done and says nothing."""
    out = tmp_path / "out"
    for shard in HALVES:
        run_annotate(env, out, shard)
    for path in [*out.glob("part-*.parquet"), out / "manifest.json", out / "skipped.json"]:
        path.unlink()  # as if neither shard had merged yet
    caplog.set_level(logging.INFO, logger="vrexp.data.shards")
    with ThreadPoolExecutor(2) as pool:
        merged = list(pool.map(lambda _: merge_annotations(out), range(2)))
    assert merged == [True, True]
    assert sum("merged 2 shards" in r.getMessage() for r in caplog.records) == 1
    shards = files(out, "shards/*/part-*.parquet")
    assert files(out, "part-*.parquet") == {Path(k).name: v for k, v in shards.items()}


@pytest.mark.parametrize("run", [run_score, run_annotate], ids=["score", "annotate"])
def test_a_shard_with_no_part_of_its_own_says_why(run, env, tmp_path, caplog):
    """Seven items in parts of four make two parts: shard 0/3 has none, says so, and is
    complete: the set merges without it."""
    caplog.set_level(logging.WARNING, logger="vrexp.data.shards")
    result = run(env, tmp_path / "out", Shard(0, 3), chunk_size=4)
    assert result["items"] == 0 and result["merged"] is False
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "shard 0/3 has no items: the 7 items make 2 parts of task.chunk_size=4" in warning
    assert run(env, tmp_path / "out", Shard(1, 3), chunk_size=4)["merged"] is False
    assert run(env, tmp_path / "out", Shard(2, 3), chunk_size=4)["merged"] is True
    run(env, tmp_path / "single", chunk_size=4)
    assert files(tmp_path / "out", "*") == files(tmp_path / "single", "*")


def cli(env, tmp_path, *overrides):
    return run_task(
        compose_config(
            tmp_path,
            "task=annotate",
            f"task.model_dir={env.root / 'model'}",
            "dataset=media_folder",
            f"dataset.root={env.root / 'media'}",
            f"task.chunk_size={CHUNK}",
            "logger=none",
            *overrides,
        )
    )


def test_the_cli_refuses_a_bad_shard_or_a_shard_without_its_shared_folder(
    env, tmp_path, monkeypatch
):
    with pytest.raises(ShardSpecError, match=r"task\.shard='5/4' names no shard; valid forms"):
        cli(env, tmp_path, "task.shard=5/4", f"task.out_dir={tmp_path / 'shared'}")
    with pytest.raises(ShardSpecError, match=r"task\.shard=1/2 needs task\.out_dir: every shard"):
        cli(env, tmp_path, "task.shard=1/2")
    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun sets it
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(
        ShardSpecError, match=r"a torchrun launch of 2 ranks .* needs task\.out_dir"
    ):
        cli(env, tmp_path)
    assert not (tmp_path / "shared").exists()  # refused before any work


def test_the_cli_merges_finished_shards_with_task_shard_merge(env, tmp_path):
    out = tmp_path / "shared"
    with pytest.raises(AnnotateError, match=r"shared holds no shards"):
        cli(env, tmp_path, "task.shard=merge", f"task.out_dir={out}")
    run_annotate(env, out, HALVES[1])
    with pytest.raises(
        AnnotateError, match=r"cannot merge the shards of \S+: shard 0/2 has not started"
    ):
        cli(env, tmp_path, "task.shard=merge", f"task.out_dir={out}")
    run_annotate(env, out, HALVES[0])
    for path in [*out.glob("part-*.parquet"), out / "manifest.json", out / "skipped.json"]:
        path.unlink()  # as if the merge had not run
    cli(env, tmp_path, "task.shard=merge", f"task.out_dir={out}")
    run_annotate(env, tmp_path / "single")
    assert files(out, "*") == files(tmp_path / "single", "*")
