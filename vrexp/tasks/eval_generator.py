"""Stage ``eval_generator``: how preference optimization changed a generator.

Every generator (the base and each tuned one) samples the same held-out prompts from the same
noise. For each it reports the mean VisionReward total and per-dimension scores (paper Table 4),
how many dimensions fell below the base, and, on SynthWorld, the oracle utility and the win rate
over the base judged by it (the stand-in for human raters; paper Fig. 6), with 95% bootstrap
intervals over prompts.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger
from rich.table import Table

from vrexp.data.prompts import prompts_from
from vrexp.data.synthworld import synthworld_judge
from vrexp.generators import load_generator
from vrexp.generators.sampling import generate_and_score, load_or_build_generator, noise_seed
from vrexp.metrics import win_rate
from vrexp.reward import VisionReward
from vrexp.tracking import log_table, stage_logger
from vrexp.tracking.console import render

log = logging.getLogger(__name__)


def eval_generator(cfg: DictConfig, logger: Logger | None = None) -> dict[str, Any]:
    task = OmegaConf.to_object(cfg.task)
    reward = VisionReward.from_pretrained(task.reward_dir)
    judge = synthworld_judge(OmegaConf.to_object(cfg.dataset))
    base = load_or_build_generator(cfg, task.base_dir)
    prompts = prompts_from(task.prompts, "video" if base.video else "image")
    rows_of = [(p, s) for p in range(len(prompts)) for s in range(task.samples_per_prompt)]
    texts = [prompts[p] for p, _ in rows_of]
    seeds = [noise_seed(task.seed, p, s) for p, s in rows_of]
    groups = np.array([p for p, _ in rows_of])
    results: dict[str, dict[str, Any]] = {}
    generators = {"base": task.base_dir, **dict(task.generator_dirs)}
    for name, folder in generators.items():
        generator = base if name == "base" else load_generator(folder)
        media, scores = generate_and_score(generator, reward, texts, seeds, task.batch_size)
        results[name] = {
            "total": scores.total.double().numpy(),
            "dimensions": scores.dimensions.double().numpy(),
            "utility": judge(list(media), texts) if judge is not None else None,
        }
    names = reward.checklist.dimension_names
    rows = []
    for name, r in results.items():
        row: dict[str, Any] = {"generator": name, "reward": float(r["total"].mean())}
        dims = r["dimensions"].mean(0)
        row.update({f"reward/{n}": float(v) for n, v in zip(names, dims, strict=True)})
        base_dims = results["base"]["dimensions"].mean(0)
        row["dims_regressed"] = int((dims < base_dims - 1e-9).sum()) if name != "base" else 0
        rate, low, high = win_rate(
            r["total"], results["base"]["total"], groups, num_resamples=task.num_resamples
        )
        row.update({"reward_win_rate": rate} if name != "base" else {})
        if r["utility"] is not None:
            row["oracle_utility"] = float(r["utility"].mean())
            if name != "base":
                rate, low, high = win_rate(
                    r["utility"],
                    results["base"]["utility"],
                    groups,
                    num_resamples=task.num_resamples,
                )
                row.update(
                    {"oracle_win_rate": rate, "oracle_win_low": low, "oracle_win_high": high}
                )
        rows.append(row)
    out_dir = Path(task.out_dir or Path(cfg.paths.output_dir) / "eval")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "eval_generator.json").write_text(json.dumps(rows, indent=2) + "\n")
    with stage_logger(cfg, logger) as logger:
        columns = sorted({k for row in rows for k in row}, key=lambda k: (k != "generator", k))
        log_table(
            logger, "eval_generator", columns, [[row.get(c) for c in columns] for row in rows]
        )
        if logger is not None:
            for row in rows:
                logger.log_metrics(
                    {f"eval/{row['generator']}/{k}": v for k, v in row.items() if k != "generator"}
                )
    log.info(render(eval_table(rows, names, len(prompts), task.samples_per_prompt)))
    log.info("evaluation written to %s", out_dir)
    return {"rows": rows, "out_dir": str(out_dir)}


def eval_table(
    rows: list[dict[str, Any]], names: list[str], num_prompts: int, per_prompt: int
) -> Table:
    table = Table(title=f"Generators on {num_prompts} held-out prompts x {per_prompt} seeds")
    columns = ["generator", "reward", *[f"reward/{n}" for n in names], "dims_regressed"]
    if "oracle_utility" in rows[0]:
        columns += ["oracle_utility", "oracle_win_rate"]
    for column in columns:
        table.add_column(
            column.removeprefix("reward/"), justify="left" if column == "generator" else "right"
        )
    for row in rows:
        cells = []
        for column in columns:
            value = row.get(column)
            if column == "oracle_win_rate" and value is not None:
                cells.append(
                    f"{value:.3f} [{row['oracle_win_low']:.3f}, {row['oracle_win_high']:.3f}]"
                )
            elif isinstance(value, float):
                cells.append(f"{value:+.3f}" if column != "oracle_win_rate" else f"{value:.3f}")
            else:
                cells.append("-" if value is None else str(value))
        table.add_row(*cells)
    return table
