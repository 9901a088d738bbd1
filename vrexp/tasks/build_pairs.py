"""Stage ``build_pairs``: DPO pairs among the scored candidates, chosen by the ``dpo`` variant.

Writes ``pairs.parquet`` and ``statistics.json`` (the format and the selection are
:mod:`vrexp.data.dpo_pairs`): the paper's Table 5 dominating / non-dominating counts among the
pairs that the total-score rule alone would pick at the same threshold, and among the kept ones.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger

from vrexp.data.dpo_pairs import choose_pairs, write_pairs
from vrexp.data.samples import read_samples
from vrexp.tracking import stage_logger

log = logging.getLogger(__name__)


def build_pairs(cfg: DictConfig, logger: Logger | None = None) -> dict[str, Any]:
    task, dpo = OmegaConf.to_object(cfg.task), OmegaConf.to_object(cfg.dpo)
    out_dir = Path(task.out_dir or Path(cfg.paths.output_dir) / "pairs")
    table, _ = read_samples(task.samples)
    pairs, stats = choose_pairs(table, dpo)
    write_pairs(out_dir, pairs, stats)
    with stage_logger(cfg, logger) as logger:
        if logger is not None:
            logger.log_metrics(
                {
                    f"pairs/{k}": v
                    for k, v in stats.items()
                    if isinstance(v, int | float) and not isinstance(v, bool)
                }
            )
    log.info(
        "%s: %d pairs kept of %d qualifying (%d dominating); the total rule alone picks %d of "
        "which %d do not dominate; written to %s",
        dpo.name,
        stats["pairs"],
        stats["qualifying_pairs"],
        stats["pairs_dominating"],
        stats["total_rule"]["total_rule_pairs"],
        stats["total_rule"]["non_dominating"],
        out_dir,
    )
    return stats
