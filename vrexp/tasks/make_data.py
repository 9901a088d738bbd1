"""Stage ``make_data``: render a SynthWorld split, log its summary and print it; its
``results.json`` row (items, pairs, tie fraction, oracle agreement) feeds a sweep's table."""

from __future__ import annotations

import logging
import time
from typing import Any

from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger
from rich.progress import Progress
from rich.table import Table

from vrexp.checklist import Checklist
from vrexp.data.synthworld import make_split
from vrexp.reports.sweep import job_overrides, write_results
from vrexp.tracking import log_table, stage_logger
from vrexp.tracking.console import render

log = logging.getLogger(__name__)


def make_data(cfg: DictConfig, logger: Logger | None = None) -> dict[str, Any]:
    dataset = OmegaConf.to_object(cfg.dataset)  # runs the schema's range checks
    checklist = Checklist.from_config(cfg.dimensions)
    start = time.perf_counter()
    with stage_logger(cfg, logger) as logger:
        with Progress(transient=True) as bar:
            job = bar.add_task(f"rendering {dataset.name}", total=None)
            summary = make_split(
                dataset,
                checklist,
                overwrite=cfg.task.overwrite,
                progress=lambda done, total: bar.update(job, completed=done, total=total),
            )
        seconds = time.perf_counter() - start
        if logger is not None:
            agreement = summary["oracle_agreement"]
            logger.log_metrics(
                {
                    "data/num_items": summary["num_items"],
                    "data/num_pairs": summary["num_pairs"],
                    "data/tie_fraction": summary["tie_fraction"],
                    "data/seconds": seconds,
                    "oracle/mean_agreement": agreement["mean"],
                    "oracle/min_question_agreement": agreement["min_question"],
                    **{f"oracle/{d}": v for d, v in agreement["per_dimension"].items()},
                }
            )
            log_table(
                logger,
                "level_histograms",
                ["sub_dimension", "option", "count"],
                [[s, o, c] for s, h in summary["level_histograms"].items() for o, c in h.items()],
            )
        if cfg.task.print_summary:
            print_summary(summary, dataset.out_dir, seconds)
    row = {
        "num_items": summary["num_items"],
        "num_pairs": summary["num_pairs"],
        "tie_fraction": summary["tie_fraction"],
        "oracle_agreement": summary["oracle_agreement"]["mean"],
    }
    write_results(cfg.paths.output_dir, [row], job_overrides())
    return summary


def print_summary(summary: dict[str, Any], out_dir: str, seconds: float) -> None:
    levels = Table(title="Plan levels per sub-dimension (best option first)")
    levels.add_column("sub-dimension")
    levels.add_column("option counts")
    for sub, counts in summary["level_histograms"].items():
        levels.add_row(sub, "  ".join(f"{option}: {n}" for option, n in counts.items()))
    log.info(render(levels))
    oracle = Table(title="Pixel-oracle agreement with the rendered plan")
    oracle.add_column("dimension")
    oracle.add_column("agreement", justify="right")
    for dim, value in summary["oracle_agreement"]["per_dimension"].items():
        oracle.add_row(dim, f"{value:.2%}")
    log.info(render(oracle))
    log.info(
        "%d items, %d pairs, tie fraction %.3f, written to %s in %.1f s",
        summary["num_items"],
        summary["num_pairs"],
        summary["tie_fraction"],
        out_dir,
        seconds,
    )
