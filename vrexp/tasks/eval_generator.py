"""Stage ``eval_generator``: how preference optimization changed a generator.

Every generator (the base and each tuned one) samples the same held-out prompts from the same
noise. For each it reports the mean VisionReward total and per-dimension scores (paper Table 4),
how many dimensions fell below the base, and, on SynthWorld, the oracle utility, the win rate and
mean utility gain over the base judged by it (the stand-in for human raters; paper Fig. 6), and
the world's factors whose quality rose or fell, with paired 95% bootstrap intervals over prompts
(:mod:`vrexp.metrics.generators`). Several tuned generators are also compared head to head
(``head_to_head.json``). Every judged sample is kept in ``eval_samples.parquet``, so the jobs of a
sweep can be compared the same way afterwards.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger
from rich.table import Table

from vrexp.data.prompts import prompts_from
from vrexp.data.synthworld import synthworld_verdict
from vrexp.generators import load_generator
from vrexp.generators.sampling import generate_and_score, load_or_build_generator, noise_seed
from vrexp.metrics.generators import JudgedSamples, compare, head_to_head, summary
from vrexp.reports.eval_samples import EVAL_DIR, groups_of, write_eval_samples
from vrexp.reward import VisionReward
from vrexp.tracking import log_table, stage_logger
from vrexp.tracking.console import render

log = logging.getLogger(__name__)


def eval_generator(cfg: DictConfig, logger: Logger | None = None) -> dict[str, Any]:
    task = OmegaConf.to_object(cfg.task)
    reward = VisionReward.from_pretrained(task.reward_dir)
    verdict = synthworld_verdict(OmegaConf.to_object(cfg.dataset))
    base = load_or_build_generator(cfg, task.base_dir)
    prompts = prompts_from(task.prompts, "video" if base.video else "image")
    rows_of = [(p, s) for p in range(len(prompts)) for s in range(task.samples_per_prompt)]
    texts = [prompts[p] for p, _ in rows_of]
    seeds = [noise_seed(task.seed, p, s) for p, s in rows_of]
    sample_rows = {
        "prompt_index": [p for p, _ in rows_of],
        "sample": [s for _, s in rows_of],
        "prompt": texts,
        "seed": seeds,
    }
    groups = groups_of(sample_rows)
    names = reward.checklist.dimension_names
    judged: dict[str, JudgedSamples] = {}
    generators = {"base": task.base_dir, **dict(task.generator_dirs)}
    for name, folder in generators.items():
        generator = base if name == "base" else load_generator(folder)
        media, scores = generate_and_score(generator, reward, texts, seeds, task.batch_size)
        dims = scores.dimensions.double().numpy()
        oracle = verdict(list(media), texts) if verdict is not None else None
        judged[name] = JudgedSamples(
            total=scores.total.double().numpy(),
            dimensions={n: dims[:, i] for i, n in enumerate(names)},
            utility=oracle.utility if oracle is not None else None,
            qualities=oracle.qualities if oracle is not None else None,
        )
    rows = []
    base_row = summary(judged["base"])
    for name, samples in judged.items():
        row: dict[str, Any] = {"generator": name, **summary(samples)}
        row["dims_regressed"] = sum(
            row[f"reward/{n}"] < base_row[f"reward/{n}"] - 1e-9 for n in names
        )
        if name != "base":
            row |= compare(samples, judged["base"], groups, num_resamples=task.num_resamples)
        rows.append(row)
    tuned = {name: samples for name, samples in judged.items() if name != "base"}
    matches = head_to_head(tuned, groups, num_resamples=task.num_resamples)
    out_dir = Path(task.out_dir or Path(cfg.paths.output_dir) / EVAL_DIR)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "eval_generator.json").write_text(json.dumps(rows, indent=2) + "\n")
    write_eval_samples(out_dir, sample_rows, judged)
    if matches:
        (out_dir / "head_to_head.json").write_text(json.dumps(matches, indent=2) + "\n")
    with stage_logger(cfg, logger) as logger:
        columns = sorted({k for row in rows for k in row}, key=lambda k: (k != "generator", k))
        log_table(
            logger, "eval_generator", columns, [[row.get(c) for c in columns] for row in rows]
        )
        if logger is not None:
            for row in rows:
                logger.log_metrics(
                    {
                        f"eval/{row['generator']}/{k}": v
                        for k, v in row.items()
                        if k != "generator" and isinstance(v, int | float)
                    }
                )
    log.info(render(eval_table(rows, names, len(prompts), task.samples_per_prompt)))
    log.info("evaluation written to %s", out_dir)
    return {"rows": rows, "head_to_head": matches, "out_dir": str(out_dir)}


def eval_table(
    rows: list[dict[str, Any]], names: list[str], num_prompts: int, per_prompt: int
) -> Table:
    table = Table(title=f"Generators on {num_prompts} held-out prompts x {per_prompt} seeds")
    columns = ["generator", "reward", *[f"reward/{n}" for n in names], "dims_regressed"]
    if "oracle_utility" in rows[0]:
        columns += ["oracle_utility", "oracle_win_rate", "oracle_up", "oracle_down"]
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
