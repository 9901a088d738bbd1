"""Stage ``fit_weights``: the non-negative linear weighting of checklist answers, fitted on pairs.

Reads the checklist answers that ``annotate`` wrote and the split's human pairs (train part of
``dataset.partition``, as for the checklist data), fits the weights (exact bounded L-BFGS, or the
paper's Algorithm 1 as a Lightning ``WeightModule``) and writes::

    weights.json, checklist.yaml, reward_config.json   the LinearReward (VisionReward files)
    checklist_model/                                   with task.model_dir: a whole VisionReward
    select_checklist.yaml                              the zero-weight questions pruned (a dimensions/ YAML)
    weights.png                                        weights grouped by dimension
    fit_info.json                                      pairs used, train accuracy, timing
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger, WandbLogger
from rich.markup import escape
from rich.table import Table

from vrexp.checklist import Checklist
from vrexp.data.annotations import pair_answers, read_annotations
from vrexp.data.visionrewarddb import preference_pair_parts
from vrexp.modules.weights import fit_weighting
from vrexp.reports.weights import plot_weights
from vrexp.reward import LinearReward
from vrexp.reward.scorer import link_model, save_reward_files
from vrexp.reward.selection import pair_accuracy, write_select_checklist
from vrexp.tracking import log_table, stage_logger
from vrexp.tracking.console import render

log = logging.getLogger(__name__)


def fit_weights(cfg: DictConfig, logger: Logger | None = None) -> dict[str, Any]:
    task = OmegaConf.to_object(cfg.task)
    dataset = OmegaConf.to_object(cfg.dataset)
    checklist = Checklist.from_config(cfg.dimensions)
    pairs = preference_pair_parts(dataset, checklist)["train"].sample(task.num_pairs, cfg.seed)
    table = read_annotations(task.annotations)
    out_dir = Path(task.out_dir or Path(cfg.paths.output_dir) / "reward")
    with stage_logger(cfg, logger) as logger:
        start = time.perf_counter()
        reward = fit_weighting(table, checklist, pairs, task, seed=cfg.seed, logger=logger)
        seconds = time.perf_counter() - start
        answers = pair_answers(table, reward.checklist, pairs, task.hard_answers)
        save_reward_files(out_dir, reward, hard_answers=task.hard_answers)
        if task.model_dir is not None:
            link_model(task.model_dir, out_dir)
        select = write_select_checklist(
            reward, out_dir / "select_checklist.yaml", task.select_threshold
        )
        plot = plot_weights(reward, out_dir / "weights.png")
        info = {
            "num_pairs": len(pairs),
            "num_untied_pairs": int((pairs.label != 0).sum()),
            "seed": cfg.seed,
            "encoding": str(task.encoding),
            "hard_answers": task.hard_answers,
            "solver": str(task.solver),
            "l2": task.l2,
            "sgd": dataclasses.asdict(task.sgd),
            "num_features": reward.num_features,
            "num_zero_weights": int((reward.weights == 0).sum()),
            "select_questions": 0 if select is None else len(select.questions),
            "seconds": seconds,
            "train": pair_accuracy(reward, *answers, pairs.label),
        }
        (out_dir / "fit_info.json").write_text(json.dumps(info, indent=2) + "\n")
        if logger is not None:
            logger.log_metrics(
                {
                    "fit/seconds": seconds,
                    "fit/num_zero_weights": info["num_zero_weights"],
                    "fit/train_tau_star": info["train"]["tau_star"],
                    "fit/train_diff": info["train"]["diff"],
                }
            )
            log_table(
                logger,
                "fit/weights",
                ["id", "dimension", "question", "weight"],
                [
                    [q.id, q.dimension, q.text, float(w)]
                    for q, w in zip(reward.feature_questions, reward.weights, strict=True)
                ],
            )
            if isinstance(logger, WandbLogger):
                logger.log_image(key="fit/weights_plot", images=[str(plot)])
    log.info(render(weights_table(reward, info)))
    log.info(
        "%d of %d weights are 0; train tau* %.3f, diff %.3f; fitted in %.2f s; written to %s",
        info["num_zero_weights"],
        info["num_features"],
        info["train"]["tau_star"],
        info["train"]["diff"],
        info["seconds"],
        out_dir,
    )
    return {**info, "out_dir": str(out_dir)}


def weights_table(reward: LinearReward, info: dict) -> Table:
    table = Table(title=f"Weights of {reward.checklist.name} ({info['num_pairs']} pairs)")
    for column in ("dimension", "question", "weight"):
        table.add_column(column, justify="right" if column == "weight" else "left")
    for q, w in zip(reward.feature_questions, reward.weights.tolist(), strict=True):
        table.add_row(escape(q.dimension), escape(q.text), f"{w:.3f}")  # "[[prompt]]" is text
    return table
