"""Kill and resume of every training stage: train_checklist, train_generator, train_dpo and the
pairwise baselines of evaluate (docs/reliability.md §2).

A stage is interrupted after some optimizer steps (a real SIGKILL of ``run.py`` for
train_checklist; in process a callback that raises, which is what a crash leaves behind), then
rerun with the same command into the same output. Tolerance: the resumed run's exported weights
equal the uninterrupted run's exactly (max |diff| = 0.0, measured on CPU at these sizes, mid-epoch
and at an epoch's end), because the checkpoint carries the optimiser, the scheduler, the loader's
position and the random generators. A changed setting is refused by name, ``task.overwrite=true``
starts afresh, and no checkpoint is left once the model is exported.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from tests.conftest import ROOT, compose_config, run_cli
from tests.test_reward_pipeline import write_oracle_annotations
from vrexp.backbones import build_backbone
from vrexp.checklist import Checklist
from vrexp.configs.checks import ConfigValueError
from vrexp.data.dpo_pairs import PAIRS_FILE
from vrexp.data.synthworld import ensure_split
from vrexp.media import save_media
from vrexp.modules.resume import (
    ResumeError,
    SafeCheckpointIO,
    checkpoint_dir,
    claim_checkpoints,
    config_manifest,
)
from vrexp.reward import LinearReward
from vrexp.reward.scorer import VisionReward
from vrexp.tasks.evaluate import evaluate
from vrexp.tasks.fit_weights import fit_weights
from vrexp.tasks.train_checklist import train_checklist
from vrexp.tasks.train_dpo import train_dpo
from vrexp.tasks.train_generator import train_generator

pytestmark = pytest.mark.usefixtures("one_thread")

SMOKE = ["debug=smoke", "logger=none", "trainer.enable_progress_bar=false"]
TOLERANCE = 0.0  # max |weight difference| between a resumed and an uninterrupted run (CPU)


class Interrupt(pl.Callback):
    """Stands in for a crash: raises once training has made ``step`` optimizer steps (before the
    checkpoint of that step is written, as a kill would)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        if trainer.global_step >= self.step:
            raise InterruptedError(f"interrupted at step {trainer.global_step}")


def interrupt_at(step: int) -> list[str]:
    target = f"{Interrupt.__module__}.{Interrupt.__qualname__}"
    return [
        f"+callbacks.every_stage.interrupt._target_={target}",
        f"+callbacks.every_stage.interrupt.step={step}",
    ]


def max_weight_diff(a: Path, b: Path) -> float:
    """Largest |difference| over every tensor of the safetensors files of two model folders."""
    files = sorted(p.relative_to(a) for p in a.rglob("*.safetensors"))
    assert files and files == sorted(p.relative_to(b) for p in b.rglob("*.safetensors"))
    diff = 0.0
    for name in files:
        wa, wb = load_file(a / name), load_file(b / name)
        assert wa.keys() == wb.keys()
        diff = max(diff, *((wa[k].double() - wb[k].double()).abs().max().item() for k in wa))
    return diff


def checkpoint_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.ckpt"))


def leftovers(save_dir: Path) -> list[str]:
    """Checkpoint files (``last-v1.ckpt`` included) and temporary folders a run into
    ``save_dir`` left behind: none once its model is exported."""
    parent = save_dir.parent
    return sorted(
        str(p.relative_to(parent))
        for pattern in (
            f"{save_dir.name}/**/*.ckpt",
            f"{save_dir.name}.checkpoints",
            f".{save_dir.name}.*",
        )
        for p in parent.glob(pattern)
    )


def interrupted(run, cfg_overrides: list[str], step: int, save_dir: Path) -> torch.Tensor:
    """Run a stage until ``step``, return the step its last checkpoint holds."""
    with pytest.raises(InterruptedError):
        run(*cfg_overrides, *interrupt_at(step))
    last = checkpoint_dir(save_dir) / "last.ckpt"
    # Loads with weights_only=True: a checkpoint holds tensors and plain values only.
    return torch.load(last, weights_only=True)


# ------------------------------------------------------------------------------ train_checklist
CHECKLIST = [*SMOKE, "task=train_checklist"]  # 12 steps an epoch


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """One folder (and one rendered smoke split) for every stage of this module."""
    return tmp_path_factory.mktemp("resume")


@pytest.fixture(scope="module")
def checklist_reference(root):
    """The uninterrupted train_checklist run of ``steps`` steps (made once per step count)."""
    made = {}

    def reference(steps: int) -> tuple[Path, dict]:
        if steps not in made:
            save_dir = root / f"checklist-ref{steps}"
            made[steps] = (
                save_dir,
                train_checklist(
                    compose_config(
                        root, *CHECKLIST, f"task.max_steps={steps}", f"task.save_dir={save_dir}"
                    )
                ),
            )
        return made[steps]

    return reference


@pytest.mark.parametrize(
    ("steps", "every", "kill", "resumed_at"),
    [(8, 5, 7, 5), pytest.param(16, 12, 14, 12, marks=pytest.mark.slow)],
    ids=["mid-epoch", "epoch-end"],
)
def test_train_checklist_resumes_to_the_uninterrupted_model(
    root, checklist_reference, steps, every, kill, resumed_at
):
    reference_dir, reference = checklist_reference(steps)
    save_dir = root / f"checklist-every{every}"
    common = [
        *CHECKLIST,
        f"task.max_steps={steps}",
        f"task.save_dir={save_dir}",
        f"callbacks.resume.every_n_train_steps={every}",
    ]

    def run(*overrides):
        return train_checklist(compose_config(root, *common, *overrides))

    state = interrupted(run, [], kill, save_dir)
    assert state["global_step"] == resumed_at
    assert not save_dir.exists()  # nothing a later stage could read before the end
    with pytest.raises(ResumeError, match=r"task\.lr\b.*task\.overwrite=true"):
        run("task.lr=0.01")
    assert (checkpoint_dir(save_dir) / "last.ckpt").is_file()  # refused: nothing was touched
    result = run()
    assert result["steps"] == reference["steps"] == steps
    assert max_weight_diff(reference_dir, save_dir) <= TOLERANCE
    assert result["test"] == reference["test"]
    assert result["best_val_acc"] == reference["best_val_acc"]
    assert leftovers(save_dir) == []


@pytest.mark.parametrize("every", [0, -3, "often"])
def test_a_bad_checkpoint_interval_is_refused_by_key(tmp_path, every):
    cfg = compose_config(tmp_path, *CHECKLIST, f"callbacks.resume.every_n_train_steps={every}")
    with pytest.raises(ConfigValueError, match=r"callbacks\.resume\.every_n_train_steps"):
        train_checklist(cfg)
    assert not list(tmp_path.rglob("*.ckpt"))


def test_a_checkpoint_folder_in_use_is_refused_until_its_stage_ends(tmp_path):
    cfg = compose_config(tmp_path, *CHECKLIST)
    manifest = config_manifest(cfg, ("task", "dataset"))
    claim = {"overwrite": False, "what": "checklist training"}
    output = tmp_path / "model"
    held = pytest.raises(ResumeError, match=r"held by another process \(lock file .*\.lock\)")
    with claim_checkpoints(cfg, output, manifest, **claim), held:
        claim_checkpoints(cfg, output, manifest, **claim)
    failing = pytest.raises(RuntimeError, match="stage failed")
    with failing, claim_checkpoints(cfg, output, manifest, **claim):  # a failing stage lets go
        raise RuntimeError("stage failed")
    with claim_checkpoints(cfg, output, manifest, **claim) as checkpoints:
        assert checkpoints.resume_from is None
        checkpoints.finish()  # the model is exported: the folder goes
    assert not checkpoint_dir(output).exists()


def test_checkpoints_without_a_manifest_are_refused_or_cleared(tmp_path):
    cfg = compose_config(tmp_path, *CHECKLIST)
    manifest = config_manifest(cfg, ("task", "dataset"))
    output = tmp_path / "model"
    orphan = checkpoint_dir(output) / "last.ckpt"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"from a run that recorded nothing")
    with pytest.raises(ResumeError, match=r"cannot resume: .*has no manifest\.json"):
        claim_checkpoints(cfg, output, manifest, overwrite=False, what="checklist training")
    assert orphan.exists()  # refused, not touched
    with claim_checkpoints(
        cfg, output, manifest, overwrite=True, what="checklist training"
    ) as checkpoints:
        assert checkpoints.resume_from is None and not orphan.exists()


class RunsCode:
    """A pickle that would create ``marker`` when unpickled without weights_only."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_checkpoints_are_read_weights_only(tmp_path):
    """What every Trainer of the training stages reads its checkpoints with."""
    marker, path = tmp_path / "code-ran", tmp_path / "last.ckpt"
    torch.save({"state_dict": RunsCode(marker)}, path)
    with pytest.raises(ResumeError, match=r"last\.ckpt holds more than tensors"):
        SafeCheckpointIO().load_checkpoint(path)
    assert not marker.exists()
    torch.save({"state_dict": {"w": torch.ones(2)}, "step": 3}, path)
    assert SafeCheckpointIO().load_checkpoint(path)["step"] == 3


@pytest.mark.slow
def test_a_checkpoint_that_would_run_code_is_refused_by_name(root):
    save_dir = root / "checklist-tampered"
    common = [*CHECKLIST, "task.max_steps=8", f"task.save_dir={save_dir}"]

    def run(*overrides):
        return train_checklist(compose_config(root, *common, *overrides))

    interrupted(run, ["callbacks.resume.every_n_train_steps=1"], 2, save_dir)
    last, marker = checkpoint_dir(save_dir) / "last.ckpt", root / "code-ran"
    torch.save({"state_dict": RunsCode(marker)}, last)
    with pytest.raises(ResumeError, match=r"last\.ckpt holds more than tensors"):
        run()
    assert not marker.exists() and not save_dir.exists()


@pytest.mark.slow
def test_overwrite_starts_afresh_instead_of_resuming_other_settings(root, checklist_reference):
    """A killed run with another learning rate, then the reference settings with overwrite: the
    result is the reference model (a resume of the other run's checkpoint would differ)."""
    reference_dir, _ = checklist_reference(8)
    save_dir = root / "checklist-overwrite"
    common = [
        *CHECKLIST,
        "task.max_steps=8",
        f"task.save_dir={save_dir}",
        "callbacks.resume.every_n_train_steps=2",
    ]

    def run(*overrides):
        return train_checklist(compose_config(root, *common, *overrides))

    interrupted(run, ["task.lr=0.01", "backbone.tiny.hidden_size=48"], 3, save_dir)
    with pytest.raises(ResumeError) as refused:
        run()
    assert "backbone.tiny.hidden_size" in str(refused.value) and "task.lr" in str(refused.value)
    run("task.overwrite=true")
    assert max_weight_diff(reference_dir, save_dir) <= TOLERANCE
    assert leftovers(save_dir) == []


@pytest.mark.slow
def test_train_checklist_killed_by_sigkill_resumes_to_the_same_model(tmp_path):
    """The issue's row: ``kill -9`` during train_checklist, then the same command again."""
    args = [
        "task=train_checklist",
        *SMOKE,
        "task.max_steps=12",
        "callbacks.resume.every_n_train_steps=3",
        f"paths.root_dir={tmp_path}",
    ]
    reference = run_cli(*args, f"paths.output_dir={tmp_path}/ref")
    assert reference.returncode == 0, reference.stderr[-2000:]
    out = tmp_path / "killed"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    command = [sys.executable, str(ROOT / "run.py"), *args, f"paths.output_dir={out}"]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    last = checkpoint_dir(out / "checklist_model") / "last.ckpt"
    deadline = time.monotonic() + 240
    while not last.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    killed_at = torch.load(last, weights_only=True)["global_step"]
    assert 0 < killed_at < 12
    assert not (out / "checklist_model").exists()
    rerun = run_cli(*args, f"paths.output_dir={out}")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "resuming from" in rerun.stderr + rerun.stdout
    diff = max_weight_diff(tmp_path / "ref" / "checklist_model", out / "checklist_model")
    assert diff <= TOLERANCE
    assert checkpoint_files(tmp_path) == []
    assert not list(tmp_path.rglob("last-v*.ckpt")) and not list(tmp_path.rglob(".*.tmp"))


# ------------------------------------------------------------------------------ train_generator
# 114 training renders in batches of 32: 3 steps an epoch; the resume lands inside the second.
GENERATOR = [
    *SMOKE,
    "task=train_generator",
    "task.max_steps=6",
    "task.batch_size=32",
    "callbacks.resume.every_n_train_steps=2",
]


@pytest.mark.slow  # the same data module and random-state path as train_dpo's (a default test)
def test_train_generator_resumes_to_the_uninterrupted_model(root):
    def run(name, *overrides):
        return train_generator(
            compose_config(root, *GENERATOR, f"task.save_dir={root / name}", *overrides)
        )

    reference = run("generator-ref")
    with pytest.raises(InterruptedError):
        run("generator", *interrupt_at(5))
    last = checkpoint_dir(root / "generator") / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 4
    with pytest.raises(ResumeError, match=r"task\.cond_dropout"):
        run("generator", "task.cond_dropout=0.5")
    result = run("generator")
    assert result["steps"] == 6 and result["val_loss"] == reference["val_loss"]
    assert max_weight_diff(root / "generator-ref", root / "generator") <= TOLERANCE
    assert leftovers(root / "generator") == []


# ------------------------------------------------------------------------------ train_dpo
@pytest.fixture(scope="module")
def dpo_inputs(root):
    """A VisionReward folder (tiny VLM, random non-negative weights) and six DPO pairs of random
    images, in build_pairs' format."""
    cfg = compose_config(root, *SMOKE)
    checklist = Checklist.from_config(cfg.dimensions)
    backbone = build_backbone(OmegaConf.to_object(cfg.backbone)).eval()
    features = [q for q in checklist.questions if q.kind != "presence"]
    weights = np.random.default_rng(0).uniform(0.1, 1.0, len(features))
    VisionReward(backbone, LinearReward(checklist, weights)).save_pretrained(root / "reward")
    rng = np.random.default_rng(1)
    rows = []
    for i in range(6):
        paths = []
        for side in ("winner", "loser"):
            path = root / "media" / f"{i}-{side}.png"
            save_media(path, rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
            paths.append(str(path))
        rows.append({"winner_path": paths[0], "loser_path": paths[1], "prompt": f"a red ball {i}"})
    (root / "pairs").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), root / "pairs" / PAIRS_FILE)
    return root


def test_train_dpo_resumes_to_the_uninterrupted_model_and_curve(dpo_inputs):
    root = dpo_inputs
    common = [
        *SMOKE,
        "task=train_dpo",
        "task.generator_dir=null",  # the tiny generator built from its config, as the base
        f"task.pairs={root / 'pairs'}",
        f"task.reward_dir={root / 'reward'}",
        "task.max_steps=5",  # 3 steps an epoch; the resume lands inside the second
        "callbacks.resume.every_n_train_steps=2",
    ]

    def run(name, *overrides):
        return train_dpo(compose_config(root, *common, f"task.save_dir={root / name}", *overrides))

    reference = run("dpo-ref")
    with pytest.raises(InterruptedError):
        run("dpo", *interrupt_at(5))
    with pytest.raises(ResumeError, match=r"dpo\.beta"):
        run("dpo", "dpo.beta=7")
    result = run("dpo")
    assert result["steps"] == 5 and result["curve"] == reference["curve"]
    assert [p["step"] for p in result["curve"]] == [0, 2, 4, 5]
    assert result["final_loss"] == reference["final_loss"]
    assert max_weight_diff(root / "dpo-ref", root / "dpo") <= TOLERANCE
    assert json.loads((root / "dpo" / "training.json").read_text()) == result
    assert leftovers(root / "dpo") == []


# ------------------------------------------------------------------------------ baselines
@pytest.fixture(scope="module")
def reward_inputs(root):
    """Oracle-like annotations of the smoke split and the weighting fitted on them."""
    cfg = compose_config(root, *SMOKE)
    checklist = Checklist.from_config(cfg.dimensions)
    split_dir = ensure_split(OmegaConf.to_object(cfg.dataset), checklist)
    write_oracle_annotations(split_dir, checklist, root / "annotations", noise=0.3)
    fit_weights(
        compose_config(
            root,
            *SMOKE,
            "task=fit_weights",
            f"task.annotations={root / 'annotations'}",
            f"task.out_dir={root / 'weighting'}",
        )
    )
    return root


def test_evaluate_resumes_its_pairwise_baseline_training(reward_inputs):
    root = reward_inputs
    common = [
        *SMOKE,
        "task=evaluate",
        f"task.annotations={root / 'annotations'}",
        f"task.reward_dir={root / 'weighting'}",
        "task.baselines=[bt_head]",
        "task.baseline.max_epochs=2",
        "task.baseline.max_steps=6",
        "callbacks.resume.every_n_train_steps=2",
    ]

    def run(name, *overrides):
        return evaluate(compose_config(root, *common, f"task.out_dir={root / name}", *overrides))

    reference = run("eval-ref")
    with pytest.raises(InterruptedError):
        run("eval", *interrupt_at(5))
    folder = checkpoint_dir(root / "eval" / "baseline-bt_head")
    assert torch.load(folder / "last.ckpt", weights_only=True)["global_step"] == 4
    with pytest.raises(ResumeError, match=r"task\.baseline\.lr"):
        run("eval", "task.baseline.lr=0.01")
    result = run("eval")
    bt_head = [r for r in result["rows"] if r["method"] == "bt_head"]
    assert bt_head == [r for r in reference["rows"] if r["method"] == "bt_head"]
    assert checkpoint_files(root / "eval") == [] and not folder.exists()
