"""Stage ``evaluate``: tie-aware preference accuracy of VisionReward against baselines.

On the split's test pairs (never seen by the checklist model or the weighting) it reports tau*,
diff and their 95% bootstrap intervals (PAPER.md §5.1) for:

- ``VisionReward``: the fitted linear weighting of the checklist answers;
- ``bt_head``: a scalar Bradley-Terry reward head on the same backbone, trained on the same pairs
  (the "black-box" kind, like ImageReward or VideoScore);
- ``generic_question``: one generic yes/no question, its log-odds trained on the same pairs;
- ``alignment``: the alignment questions alone, weighted on the same pairs.

It also reports each VisionReward dimension's sub-score accuracy. Outputs go to ``out_dir``
(``preference_accuracy.{md,csv,png}``, ``dimension_accuracy.{md,csv}``, ``evaluation.json``) and
the job's ``results.json`` feeds a sweep's table.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger
from rich.console import Console
from rich.table import Table

from vrexp.backbones import build_backbone
from vrexp.data.annotations import read_annotations
from vrexp.data.media import load_media
from vrexp.data.pairs import PairDataModule, PreferencePairs, item_records, pair_parts
from vrexp.metrics import per_dimension_accuracy, preference_report
from vrexp.modules.pairwise import PairwiseRewardModule
from vrexp.reports import PlotSpec, write_table
from vrexp.reports.sweep import write_results
from vrexp.reward import LinearReward, fit_linear_reward
from vrexp.reward.scorer import load_reward_files
from vrexp.tasks.fit_weights import pair_answers, require_synthworld
from vrexp.tracking import log_table, stage_logger

ALIGNMENT = "Alignment"


def load_linear_reward(reward_dir: str | Path) -> tuple[LinearReward, bool, dict[str, Any]]:
    """(reward, hard_answers, fit_info) of a fit_weights output folder."""
    reward_dir = Path(reward_dir)
    reward, config = load_reward_files(reward_dir)
    info_path = reward_dir / "fit_info.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    return reward, bool(config.get("hard_answers", False)), info


def _alignment_baseline(
    reward: LinearReward, table: Any, train: PreferencePairs, test: PreferencePairs, hard: bool
) -> torch.Tensor:
    checklist = reward.checklist
    if ALIGNMENT not in checklist.dimension_names:
        raise ValueError(
            f"the alignment baseline needs a dimension named {ALIGNMENT!r}; checklist "
            f"{checklist.name!r} has {checklist.dimension_names}"
        )
    aligned = checklist.without([d for d in checklist.dimension_names if d != ALIGNMENT])
    a, b = pair_answers(table, aligned, train, hard)
    fitted = fit_linear_reward(aligned, a, b, train.label, encoding=reward.encoding)
    a, b = pair_answers(table, aligned, test, hard)
    return fitted.score(a) - fitted.score(b)


def _pairwise_baseline(
    cfg: DictConfig,
    head: str,
    parts: dict[str, PreferencePairs],
    test: PreferencePairs,
    records: dict[int, tuple[Path, str]],
    logger: Logger | None,
) -> torch.Tensor:
    settings = cfg.task.baseline
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    module = PairwiseRewardModule(
        build_backbone(OmegaConf.to_object(cfg.backbone)),
        head=head,
        question=settings.question,
        lr=settings.lr,
        weight_decay=settings.weight_decay,
        warmup_steps=settings.warmup_steps,
        vision_lr_scale=settings.vision_lr_scale,
        log_prefix=head,
    )
    data = PairDataModule(parts, records, batch_size=settings.batch_size, seed=cfg.seed)
    limits = {k: settings[k] for k in ("max_epochs", "max_time") if settings[k] is not None}
    if settings.max_steps != -1:
        limits["max_steps"] = settings.max_steps
    trainer = instantiate(
        cfg.trainer,
        logger=logger if logger is not None else False,
        enable_checkpointing=False,
        enable_model_summary=False,
        **limits,
    )
    trainer.fit(module, datamodule=data)
    module.eval()
    items = test.item_ids
    rewards = {}
    with torch.inference_mode():
        for start in range(0, len(items), settings.batch_size):
            chunk = items[start : start + settings.batch_size]
            media = [load_media(records[int(i)][0]) for i in chunk]
            values = module.reward(media, [records[int(i)][1] for i in chunk])
            rewards.update(zip(chunk.tolist(), values.double().cpu().tolist(), strict=True))
    score = np.array(
        [rewards[int(a)] - rewards[int(b)] for a, b in zip(test.item_a, test.item_b, strict=True)]
    )
    return torch.from_numpy(score)


def _report(delta: torch.Tensor, label: torch.Tensor, resamples: int, seed: int) -> dict:
    report = preference_report(delta, label, num_resamples=resamples, seed=seed)
    # Named for what they count, so they never clash with a sweep's num_pairs.
    report["test_pairs"], report["test_ties"] = report.pop("num_pairs"), report.pop("num_ties")
    return report


def _job_overrides() -> list[str]:
    if not HydraConfig.initialized():
        return []
    return list(HydraConfig.get().overrides.task)


def evaluate(cfg: DictConfig, logger: Logger | None = None) -> dict[str, Any]:
    task = cfg.task
    split_dir = require_synthworld(cfg)
    reward, hard, fit_info = load_linear_reward(task.reward_dir)
    parts = pair_parts(
        split_dir, val_fraction=task.val_fraction, test_fraction=task.test_fraction, seed=cfg.seed
    )
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
    with stage_logger(cfg, logger) as logger:
        records = item_records(split_dir)
        for name in task.baselines:
            start = time.perf_counter()
            if name == "alignment":
                deltas[name] = _alignment_baseline(reward, table, train, test, hard)
            else:
                head = "scalar" if name == "bt_head" else "question"
                pairs = {"train": train, "val": parts["val"]}
                deltas[name] = _pairwise_baseline(cfg, head, pairs, test, records, logger)
            seconds[name] = time.perf_counter() - start
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
        out_dir = Path(task.out_dir)
        title = f"Preference accuracy on {cfg.dataset.name} ({task.part} pairs)"
        write_table(rows, out_dir, "preference_accuracy", title=title, plot=PlotSpec())
        write_table(dimension_rows, out_dir, "dimension_accuracy", title="VisionReward sub-scores")
        summary = {
            "rows": rows,
            "dimensions": dimension_rows,
            "num_train_pairs": len(train),
            "baseline_seconds": seconds,
        }
        (out_dir / "evaluation.json").write_text(json.dumps(summary, indent=2) + "\n")
        write_results(cfg.paths.output_dir, rows, _job_overrides())
        if logger is not None:
            logger.log_metrics(
                {f"eval/{r['method']}/{k}": r[k] for r in rows for k in ("tau_star", "diff")}
            )
            columns = list(rows[0])
            log_table(
                logger, "eval/preference_accuracy", columns, [[r[c] for c in columns] for r in rows]
            )
    print_report(Console(), title, rows, dimension_rows)
    return summary


def print_report(
    console: Console, title: str, rows: list[dict], dimension_rows: list[dict]
) -> None:
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
    console.print(table)
    dims = Table(title="VisionReward sub-score accuracy by dimension")
    for column in ("dimension", "tau*", "diff"):
        dims.add_column(column, justify="left" if column == "dimension" else "right")
    for r in dimension_rows:
        dims.add_row(r["dimension"], f"{r['tau_star']:.3f}", f"{r['diff']:.3f}")
    console.print(dims)
