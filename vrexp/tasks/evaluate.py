"""Stage ``evaluate``: tie-aware preference accuracy of VisionReward against baselines.

On the split's test pairs (never seen by the checklist model or the weighting) it reports tau*,
diff and their 95% bootstrap intervals (arXiv 2412.21059 §5.1) for:

- ``VisionReward``: the fitted linear weighting of the checklist answers;
- ``bt_head``: a scalar Bradley-Terry reward head on the same backbone, trained on the same pairs
  (the "black-box" kind, like ImageReward or VideoScore);
- ``generic_question``: one generic yes/no question, its log-odds trained on the same pairs;
- ``alignment``: the alignment questions alone, weighted on the same pairs.

It also reports each VisionReward dimension's sub-score accuracy. Outputs go to ``out_dir``
(``preference_accuracy.{md,csv,png}``, ``dimension_accuracy.{md,csv}``, ``evaluation.json``) and
the job's ``results.json`` feeds a sweep's table. A killed run rerun into the same ``out_dir``
resumes the pairwise baselines' training from their checkpoints (:mod:`vrexp.modules.resume`).
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger
from rich.table import Table

from vrexp.backbones import build_backbone
from vrexp.checklist import Checklist
from vrexp.configs.choices import Baseline
from vrexp.data.annotations import pair_answers, read_annotations
from vrexp.data.pairs import item_records, pair_parts
from vrexp.data.synthworld import preference_split
from vrexp.metrics import per_dimension_accuracy, preference_report
from vrexp.modules.pairwise import PairwiseRewardModule, pairwise_baseline_delta
from vrexp.modules.resume import claim_checkpoints, config_manifest
from vrexp.modules.trainer import build_trainer
from vrexp.ranks import is_rank_zero
from vrexp.reports import PlotSpec, write_table
from vrexp.reports.sweep import job_overrides, write_results
from vrexp.reward.baselines import PAIRWISE_HEADS, alignment_baseline
from vrexp.reward.scorer import load_linear_reward
from vrexp.tracking import log_table, stage_logger
from vrexp.tracking.console import render

log = logging.getLogger(__name__)


def _report(delta: torch.Tensor, label: torch.Tensor, resamples: int, seed: int) -> dict:
    report = preference_report(delta, label, num_resamples=resamples, seed=seed)
    # Named for what they count, so they never clash with a sweep's num_pairs.
    report["test_pairs"], report["test_ties"] = report.pop("num_pairs"), report.pop("num_ties")
    return report


def evaluate(
    cfg: DictConfig, logger: Logger | None = None, fit_info: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Evaluate ``task.reward_dir``; ``fit_info`` (pairs and seed of the fit) is read from that
    folder unless a chain passes the one it has."""
    task = OmegaConf.to_object(cfg.task)
    dataset = OmegaConf.to_object(cfg.dataset)
    split_dir = preference_split(dataset, Checklist.from_config(cfg.dimensions))
    reward, hard, stored_info = load_linear_reward(task.reward_dir)
    fit_info = stored_info if fit_info is None else fit_info
    parts = pair_parts(split_dir, dataset.partition)
    test = parts[task.part]
    if not (test.label != 0).any():
        raise ValueError(f"the {task.part} part has no untied pairs to evaluate on")
    # The baselines get exactly the weighting's training pairs: the same data budget.
    train = parts["train"].sample(fit_info.get("num_pairs"), fit_info.get("seed", cfg.seed))
    table = read_annotations(task.annotations)
    label = torch.as_tensor(test.label, dtype=torch.float64)
    answers_a, answers_b = pair_answers(table, reward.checklist, test, hard)
    deltas = {"VisionReward": reward.score(answers_a) - reward.score(answers_b)}
    seconds: dict[str, float] = {}
    finished = []  # kept until the evaluation is written: a rerun reuses a finished baseline
    out_dir = Path(task.out_dir or Path(cfg.paths.output_dir) / "evaluation")
    with stage_logger(cfg, logger) as logger, ExitStack() as held:
        records = item_records(split_dir)
        for name in task.baselines:
            start = time.perf_counter()
            if name == Baseline.alignment:
                deltas[str(name)] = alignment_baseline(reward, table, train, test, hard)
            else:
                pl.seed_everything(cfg.seed, workers=True, verbose=False)
                backbone = build_backbone(OmegaConf.to_object(cfg.backbone))
                module = PairwiseRewardModule(
                    backbone, task.baseline, head=PAIRWISE_HEADS[name], log_prefix=str(name)
                )
                manifest = config_manifest(
                    cfg,
                    ("task.baseline", "dataset", "dimensions", "backbone", "trainer"),
                    baseline=str(name),
                    fit_pairs={
                        "num_pairs": fit_info.get("num_pairs"),
                        "seed": fit_info.get("seed"),
                    },
                )
                checkpoints = held.enter_context(
                    claim_checkpoints(
                        cfg,
                        out_dir / f"baseline-{name}",
                        manifest,
                        overwrite=task.overwrite,
                        what=f"{name} baseline training",
                        folder_key="task.out_dir",
                    )
                )
                trainer = build_trainer(
                    cfg,
                    task.baseline,
                    logger,
                    checkpoints=checkpoints,
                    shard_layers=backbone.shard_layers,
                    unused_parameters=True,  # the scalar head leaves the LM head unused
                    enable_model_summary=False,
                )
                pairs = {"train": train, "val": parts["val"]}
                deltas[str(name)] = pairwise_baseline_delta(
                    module, trainer, pairs, test, records, seed=cfg.seed, checkpoints=checkpoints
                )
                finished.append(checkpoints)
            seconds[str(name)] = time.perf_counter() - start
        rows = [
            {"method": name, **_report(delta, label, task.num_resamples, cfg.seed)}
            for name, delta in deltas.items()
        ]
        dim_a, dim_b = reward.dimension_scores(answers_a), reward.dimension_scores(answers_b)
        per_dim = {
            metric: per_dimension_accuracy(dim_a, dim_b, label, metric).tolist()
            for metric in ("tau_star", "diff")
        }
        dimension_rows = [
            {"dimension": name, "tau_star": per_dim["tau_star"][d], "diff": per_dim["diff"][d]}
            for d, name in enumerate(reward.checklist.dimension_names)
        ]
        title = f"Preference accuracy on {cfg.dataset.name} ({task.part} pairs)"
        summary = {
            "rows": rows,
            "dimensions": dimension_rows,
            "num_train_pairs": len(train),
            "baseline_seconds": seconds,
        }
        if is_rank_zero():  # under DDP the baselines' ranks computed the same rows
            write_table(rows, out_dir, "preference_accuracy", title=title, plot=PlotSpec())
            write_table(
                dimension_rows, out_dir, "dimension_accuracy", title="VisionReward sub-scores"
            )
            (out_dir / "evaluation.json").write_text(json.dumps(summary, indent=2) + "\n")
            write_results(cfg.paths.output_dir, rows, job_overrides())
        for checkpoints in finished:
            checkpoints.finish()
        if logger is not None:
            logger.log_metrics(
                {f"eval/{r['method']}/{k}": r[k] for r in rows for k in ("tau_star", "diff")}
            )
            columns = list(rows[0])
            log_table(
                logger, "eval/preference_accuracy", columns, [[r[c] for c in columns] for r in rows]
            )
    for table in report_tables(title, rows, dimension_rows):
        log.info(render(table))
    log.info("evaluation written to %s", out_dir)
    return {**summary, "out_dir": str(out_dir)}


def report_tables(title: str, rows: list[dict], dimension_rows: list[dict]) -> list[Table]:
    table = Table(title=title)
    for column in ("method", "tau*", "95% CI", "diff", "95% CI "):
        table.add_column(column, justify="left" if column == "method" else "right")
    for r in rows:
        table.add_row(
            r["method"],
            f"{r['tau_star']:.3f}",
            f"[{r['tau_star_low']:.3f}, {r['tau_star_high']:.3f}]",
            f"{r['diff']:.3f}",
            f"[{r['diff_low']:.3f}, {r['diff_high']:.3f}]",
        )
    dims = Table(title="VisionReward sub-score accuracy by dimension")
    for column in ("dimension", "tau*", "diff"):
        dims.add_column(column, justify="left" if column == "dimension" else "right")
    for r in dimension_rows:
        dims.add_row(r["dimension"], f"{r['tau_star']:.3f}", f"{r['diff']:.3f}")
    return [table, dims]
