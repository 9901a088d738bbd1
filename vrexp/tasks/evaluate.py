"""Stage ``evaluate``: tie-aware preference accuracy of VisionReward against baselines.

On the split's test pairs (never seen by the checklist model or the weighting; a SynthWorld
split's, or VisionRewardDB-Video's held-out regression pairs) it reports tau*,
diff and their 95% bootstrap intervals (arXiv 2412.21059 §5.1) for:

- ``VisionReward``: the fitted linear weighting of the checklist answers;
- ``bt_head``: a scalar Bradley-Terry reward head on the same backbone, trained on the same pairs
  (the "black-box" kind, like ImageReward or VideoScore);
- ``generic_question``: one generic yes/no question, its log-odds trained on the same pairs;
- ``alignment``: the alignment questions alone, weighted on the same pairs.

It also reports each VisionReward dimension's sub-score accuracy and, on SynthWorld, the
known-truth ceilings and what each dimension's checklist errors cost of the gap to the
oracle-answer ceiling (:mod:`vrexp.modules.ceilings`). Outputs go to ``out_dir``
(``preference_accuracy.{md,csv,png}``, ``dimension_accuracy.{md,csv}``, ``oracle_gap.{md,csv}``
on SynthWorld, ``evaluation.json``) and the job's ``results.json`` feeds a sweep's table. A killed
run rerun into the same ``out_dir`` resumes the pairwise baselines' training from their
checkpoints (:mod:`vrexp.modules.resume`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger
from rich.table import Table

from vrexp.checklist import Checklist
from vrexp.configs.choices import Baseline
from vrexp.data.annotations import pair_answers, read_annotations
from vrexp.data.synthworld import preference_split
from vrexp.data.visionrewarddb import preference_pair_parts, preference_records
from vrexp.metrics import per_dimension_accuracy
from vrexp.modules.ceilings import (
    OracleAnswers,
    fit_settings,
    known_truth_ceilings,
    oracle_gap_by_dimension,
)
from vrexp.modules.evaluation import (
    method_row,
    paired_columns,
    paired_comparison,
    train_pairwise_baseline,
)
from vrexp.ranks import is_rank_zero
from vrexp.reports import PlotSpec, write_table
from vrexp.reports.sweep import job_overrides, write_results
from vrexp.reward.baselines import alignment_baseline
from vrexp.reward.scorer import load_linear_reward
from vrexp.tracking import log_table, stage_logger
from vrexp.tracking.console import render

log = logging.getLogger(__name__)


def evaluate(
    cfg: DictConfig, logger: Logger | None = None, fit_info: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Evaluate ``task.reward_dir``; ``fit_info`` (pairs and seed of the fit) is read from that
    folder unless a chain passes the one it has."""
    task = OmegaConf.to_object(cfg.task)
    dataset = OmegaConf.to_object(cfg.dataset)
    checklist = Checklist.from_config(cfg.dimensions)
    reward, hard, stored_info = load_linear_reward(task.reward_dir)
    fit_info = stored_info if fit_info is None else fit_info
    parts = preference_pair_parts(dataset, checklist)
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
        records = preference_records(dataset, checklist)
        for name in task.baselines:
            start = time.perf_counter()
            if name == Baseline.alignment:
                deltas[str(name)] = alignment_baseline(reward, table, train, test, hard)
            else:
                delta, checkpoints = train_pairwise_baseline(
                    cfg,
                    name,
                    {"train": train, "val": parts["val"]},
                    test,
                    records,
                    output=out_dir / f"baseline-{name}",
                    fit_pairs={
                        "num_pairs": fit_info.get("num_pairs"),
                        "seed": fit_info.get("seed"),
                    },
                    logger=logger,
                    held=held,
                )
                deltas[str(name)] = delta
                finished.append(checkpoints)
            seconds[str(name)] = time.perf_counter() - start
        dimension_scores = {
            "": (reward.dimension_scores(answers_a), reward.dimension_scores(answers_b))
        }
        gap_rows: list[dict[str, Any]] = []
        if task.ceilings and getattr(dataset, "kind", None) == "synthworld":
            # the split read once, for both
            oracle = OracleAnswers(preference_split(dataset, checklist), reward.checklist)
            settings = fit_settings(fit_info, task.annotations)
            fit_seed = fit_info.get("seed", cfg.seed)
            ceilings = known_truth_ceilings(
                oracle, reward.checklist, train, test, settings, seed=fit_seed
            )
            deltas.update(ceilings.deltas)
            dimension_scores["oracle_"] = ceilings.oracle_dimensions
            gap_rows = oracle_gap_by_dimension(
                oracle,
                reward.checklist,
                train,
                test,
                lambda pairs: pair_answers(table, reward.checklist, pairs, hard),
                settings,
                seed=fit_seed,
            )
        rows = [
            method_row(name, delta, label, task.num_resamples, cfg.seed)
            for name, delta in deltas.items()
        ]
        comparisons = [
            paired_comparison("VisionReward", name, deltas, label, task.num_resamples, cfg.seed)
            for name in deltas
            if name != "VisionReward"
        ]
        # Each method's row carries VisionReward's paired lead over it, for a sweep's table.
        for row in rows:
            for c in comparisons:
                if c["minus"] == row["method"]:
                    row.update(paired_columns(c))
        dimension_rows = [{"dimension": name} for name in reward.checklist.dimension_names]
        for prefix, (dim_a, dim_b) in dimension_scores.items():
            for metric in ("tau_star", "diff"):
                values = per_dimension_accuracy(dim_a, dim_b, label, metric).tolist()
                for row, value in zip(dimension_rows, values, strict=True):
                    row[f"{prefix}{metric}"] = value
        title = f"Preference accuracy on {cfg.dataset.name} ({task.part} pairs)"
        summary = {
            "rows": rows,
            "comparisons": comparisons,
            "dimensions": dimension_rows,
            "num_train_pairs": len(train),
            "baseline_seconds": seconds,
            "oracle_gap": gap_rows,
        }
        if is_rank_zero():  # under DDP the baselines' ranks computed the same rows
            write_table(rows, out_dir, "preference_accuracy", title=title, plot=PlotSpec())
            write_table(
                dimension_rows, out_dir, "dimension_accuracy", title="VisionReward sub-scores"
            )
            if gap_rows:
                write_table(
                    gap_rows,
                    out_dir,
                    "oracle_gap",
                    title="What each dimension's checklist errors cost: tau* with that dimension "
                    "answered by the oracle, weights refitted on the same pairs",
                )
            write_table(
                comparisons,
                out_dir,
                "paired_differences",
                title=f"VisionReward minus each method on the same {len(test)} pairs (paired)",
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
    for table in report_tables(title, rows, dimension_rows, comparisons, gap_rows):
        log.info(render(table))
    log.info("evaluation written to %s", out_dir)
    return {**summary, "out_dir": str(out_dir)}


def _console_table(title: str, columns: Sequence[str]) -> Table:
    """A rich table with ``columns``, the first (the row's name) left-aligned, numbers right."""
    table = Table(title=title)
    for index, column in enumerate(columns):
        table.add_column(column, justify="left" if index == 0 else "right")
    return table


def report_tables(
    title: str,
    rows: list[dict],
    dimension_rows: list[dict],
    comparisons: Sequence[dict] = (),
    gap_rows: Sequence[dict] = (),
) -> list[Table]:
    table = _console_table(title, ("method", "tau*", "95% CI", "diff", "95% CI "))
    for r in rows:
        table.add_row(
            r["method"],
            f"{r['tau_star']:.3f}",
            f"[{r['tau_star_low']:.3f}, {r['tau_star_high']:.3f}]",
            f"{r['diff']:.3f}",
            f"[{r['diff_low']:.3f}, {r['diff_high']:.3f}]",
        )
    if rows:
        table.caption = f"{rows[0]['test_pairs']} test pairs, {rows[0]['test_ties']} of them ties"
    oracle = any("oracle_tau_star" in r for r in dimension_rows)
    columns = ["dimension", "tau*", "diff"] + (["oracle tau*", "oracle diff"] if oracle else [])
    dims = _console_table("VisionReward sub-score accuracy by dimension", columns)
    for r in dimension_rows:
        keys = ["tau_star", "diff"] + (["oracle_tau_star", "oracle_diff"] if oracle else [])
        dims.add_row(r["dimension"], *(f"{r[k]:.3f}" for k in keys))
    tables = [table, dims]
    if comparisons:
        paired = _console_table(
            "VisionReward minus each method, paired 95% bootstrap interval",
            ("minus", "Δ tau*", "95% CI", "Δ diff", "95% CI "),
        )
        for c in comparisons:
            paired.add_row(
                c["minus"],
                f"{c['tau_star']:+.3f}",
                f"[{c['tau_star_low']:+.3f}, {c['tau_star_high']:+.3f}]",
                f"{c['diff']:+.3f}",
                f"[{c['diff_low']:+.3f}, {c['diff_high']:+.3f}]",
            )
        tables.append(paired)
    if gap_rows:
        gap = _console_table(
            "What each dimension's checklist errors cost (oracle answers for it)",
            ("dimension", "questions", "tau*", "recovered", "share of the gap"),
        )
        for r in gap_rows:
            gap.add_row(
                r["dimension"],
                str(r["questions"]),
                f"{r['tau_star']:.3f}",
                f"{r['recovered']:+.3f}",
                f"{r['share']:.0%}",
            )
        tables.append(gap)
    return tables
