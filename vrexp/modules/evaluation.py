"""What ``evaluate`` and the main job's data-efficiency curve share: a method's row of tau*, diff
and their 95% intervals, VisionReward's paired lead over another method on the same pairs, and a
pairwise baseline (``bt_head``, ``generic_question``) trained on given pairs with resumable
checkpoints. One home, so the curve's rows are computed exactly as the evaluation's are.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger

from vrexp.backbones import build_backbone
from vrexp.configs.choices import Baseline
from vrexp.configs.tasks import BaselineTraining
from vrexp.data.pairs import PreferencePairs
from vrexp.metrics import paired_difference, preference_report
from vrexp.modules.pairwise import PairwiseRewardModule, pairwise_baseline_delta
from vrexp.modules.resume import TrainingCheckpoints, claim_checkpoints, config_manifest
from vrexp.modules.trainer import build_trainer
from vrexp.reward.baselines import PAIRWISE_HEADS

PAIRED = "vs_visionreward_"  # row keys of VisionReward minus the row's method, paired


def method_row(
    method: str, delta: torch.Tensor, label: torch.Tensor, resamples: int, seed: int
) -> dict[str, Any]:
    """``method``'s tau*, diff and their bootstrap intervals on pairs with these labels."""
    report = preference_report(delta, label, num_resamples=resamples, seed=seed)
    # Named for what they count, so they never clash with a sweep's num_pairs.
    report["test_pairs"], report["test_ties"] = report.pop("num_pairs"), report.pop("num_ties")
    return {"method": method, **report}


def paired_comparison(
    reference: str,
    name: str,
    deltas: dict[str, torch.Tensor],
    label: torch.Tensor,
    resamples: int,
    seed: int,
) -> dict[str, Any]:
    """``reference`` minus ``name`` on tau* and diff, each with its paired 95% interval."""
    row: dict[str, Any] = {"method": reference, "minus": name}
    for metric in ("tau_star", "diff"):
        got = paired_difference(
            deltas[reference], deltas[name], label, metric, num_resamples=resamples, seed=seed
        )
        row[metric] = got["difference"]
        row[f"{metric}_low"], row[f"{metric}_high"] = got["low"], got["high"]
    return {**row, "test_pairs": label.numel(), "test_ties": int((label == 0).sum())}


def paired_columns(comparison: dict[str, Any]) -> dict[str, Any]:
    """A comparison as the ``vs_visionreward_*`` columns of the compared method's row."""
    return {f"{PAIRED}{k}": v for k, v in comparison.items() if k.startswith(("tau", "diff"))}


def train_pairwise_baseline(
    cfg: DictConfig,
    name: Baseline,
    parts: dict[str, PreferencePairs],
    test: PreferencePairs,
    records: dict[int, tuple[Path, str]],
    *,
    output: Path,
    fit_pairs: dict[str, Any],
    logger: Logger | None,
    held: ExitStack,
    log_prefix: str | None = None,
) -> tuple[torch.Tensor, TrainingCheckpoints]:
    """Train the ``name`` baseline of ``cfg`` (an evaluate config: ``task.baseline``,
    ``task.overwrite``) on ``parts`` (train, val) and return its score differences on ``test``
    and its checkpoints (kept in ``<output>.checkpoints`` under ``held``; call ``finish`` once
    the result is written). ``fit_pairs`` (the pair budget and seed) goes into the checkpoints'
    manifest, so a rerun resumes only the same training."""
    settings: BaselineTraining = OmegaConf.to_object(cfg.task.baseline)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    backbone = build_backbone(OmegaConf.to_object(cfg.backbone))
    module = PairwiseRewardModule(
        backbone, settings, head=PAIRWISE_HEADS[name], log_prefix=log_prefix or str(name)
    )
    manifest = config_manifest(
        cfg,
        ("task.baseline", "dataset", "dimensions", "backbone", "trainer"),
        baseline=str(name),
        fit_pairs=fit_pairs,
    )
    checkpoints = held.enter_context(
        claim_checkpoints(
            cfg,
            output,
            manifest,
            overwrite=cfg.task.overwrite,
            what=f"{name} baseline training",
            folder_key="task.out_dir",
        )
    )
    trainer = build_trainer(
        cfg,
        settings,
        logger,
        checkpoints=checkpoints,
        shard_layers=backbone.shard_layers,
        unused_parameters=True,  # the scalar head leaves the LM head unused
        enable_model_summary=False,
    )
    delta = pairwise_baseline_delta(
        module, trainer, parts, test, records, seed=cfg.seed, checkpoints=checkpoints
    )
    return delta, checkpoints
