"""Stage ``eval_generator``: how preference optimization changed a generator.

Every generator (the base and each tuned one) samples the same held-out prompts from the same
noise. For each it reports the mean VisionReward total and per-dimension scores (PAPER.md Table 4),
how many dimensions fell below the base, and, on SynthWorld, the oracle utility and the win rate
over the base judged by it (the stand-in for human raters; PAPER.md Fig. 6), with 95% bootstrap
intervals over prompts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig
from pytorch_lightning.loggers import Logger
from rich.console import Console
from rich.table import Table

from vrexp.data.prompts import prompts_from
from vrexp.generators import load_generator
from vrexp.reward import VisionReward
from vrexp.tasks.sample import (
    generate_and_score,
    load_or_build_generator,
    noise_seed,
    synthworld_judge,
)
from vrexp.tracking import log_table, stage_logger


def win_rate(
    ours: np.ndarray, base: np.ndarray, groups: np.ndarray, resamples: int = 1000
) -> tuple[float, float, float]:
    """Wins (ties half) of ``ours`` over ``base`` sample by sample, with a 95% bootstrap interval
    that resamples whole prompts (``groups``)."""
    wins = (ours > base) + 0.5 * (ours == base)
    ids, index = np.unique(groups, return_inverse=True)
    per_prompt = np.bincount(index, weights=wins) / np.bincount(index)
    rng = np.random.default_rng(0)
    boot = per_prompt[rng.integers(0, len(ids), (resamples, len(ids)))].mean(1)
    return float(wins.mean()), float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))


def eval_generator(cfg: DictConfig, logger: Logger | None = None) -> dict[str, Any]:
    task = cfg.task
    reward = VisionReward.from_pretrained(task.reward_dir)
    judge = synthworld_judge(cfg)
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
        rate, low, high = win_rate(r["total"], results["base"]["total"], groups)
        row.update({"reward_win_rate": rate} if name != "base" else {})
        if r["utility"] is not None:
            row["oracle_utility"] = float(r["utility"].mean())
            if name != "base":
                rate, low, high = win_rate(r["utility"], results["base"]["utility"], groups)
                row.update(
                    {"oracle_win_rate": rate, "oracle_win_low": low, "oracle_win_high": high}
                )
        rows.append(row)
    out_dir = Path(task.out_dir)
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
    print_eval(rows, names, len(prompts), task.samples_per_prompt)
    return {"rows": rows}


def print_eval(
    rows: list[dict[str, Any]], names: list[str], num_prompts: int, per_prompt: int
) -> None:
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
    Console(width=max(Console().width, 160)).print(table)
