"""Stage ``fit_weights``: the non-negative linear weighting of checklist answers, fitted on pairs.

Reads the checklist answers that ``annotate`` wrote and the split's human pairs (train part, the
same prompt partition as the checklist data), fits the weights (exact bounded L-BFGS, or the
paper's Algorithm 1 as a Lightning ``WeightModule``) and writes::

    weights.json, checklist.yaml, reward_config.json   the LinearReward (VisionReward files)
    checklist_model/                                   with task.model_dir: a whole VisionReward
    select_checklist.yaml                              the zero-weight questions pruned (a dimensions/ YAML)
    weights.png                                        weights grouped by dimension
    fit_info.json                                      pairs used, train accuracy, timing
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger, WandbLogger
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from vrexp.checklist import Checklist
from vrexp.data.annotations import answer_matrix, read_annotations
from vrexp.data.pairs import PreferencePairs, pair_parts
from vrexp.data.synthworld import ensure_split
from vrexp.metrics import diff_accuracy, tau_star
from vrexp.reports.weights import plot_weights
from vrexp.reward import LinearReward, fit_linear_reward
from vrexp.reward.scorer import link_model, save_reward_files
from vrexp.tracking import log_table, stage_logger


def require_synthworld(cfg: DictConfig) -> Path:
    if cfg.dataset.get("kind") != "synthworld":
        raise ValueError(
            f"task={cfg.task.name} needs human preference pairs; dataset {cfg.dataset.name!r} has "
            "none (use a SynthWorld dataset)"
        )
    full = Checklist.from_config(cfg.dimensions)
    return ensure_split(OmegaConf.to_object(cfg.dataset), full)


def pair_answers(
    table: Any, checklist: Checklist, pairs: PreferencePairs, hard: bool
) -> tuple[np.ndarray, np.ndarray]:
    """([P, Q], [P, Q]) answers of the A and B items of ``pairs``."""
    ids = pairs.item_ids
    answers = answer_matrix(table, checklist, ids)
    if hard:
        answers = (answers > 0.5).astype(np.float64)
    index = np.searchsorted(ids, pairs.item_a), np.searchsorted(ids, pairs.item_b)
    return answers[index[0]], answers[index[1]]


def fit_on_pairs(
    checklist: Checklist,
    answers: tuple[np.ndarray, np.ndarray],
    label: np.ndarray,
    task: Any,
    logger: Any = False,
) -> LinearReward:
    """Fit with the task's encoding and solver on the A and B answers of labelled pairs."""
    if task.solver == "sgd":
        options = {**OmegaConf.to_container(task.sgd), "logger": logger or False}
    else:
        options = {"l2": task.l2}
    return fit_linear_reward(
        checklist,
        *answers,
        label,
        encoding=task.encoding,
        solver=task.solver,
        **options,
    )


def question_subset(
    checklist: Checklist, table: Any, pairs: PreferencePairs, task: Any
) -> Checklist:
    """The checklist restricted to ``task.questions`` (Fig. 5): k random questions, or the k
    largest weights of a fit on all of them ("after weight masking")."""
    spec = task.questions
    k = spec.num_questions
    features = [q for q in checklist.questions if q.kind != "presence"]
    if k is None or k >= len(features):
        return checklist
    if k < 1:
        raise ValueError(f"task.questions.num_questions must be at least 1, got {k}")
    if spec.selection == "random":
        chosen = np.random.default_rng([spec.seed, k]).choice(len(features), k, replace=False)
    else:
        answers = pair_answers(table, checklist, pairs, task.hard_answers)
        full = fit_on_pairs(checklist, answers, pairs.label, task)
        chosen = np.argsort(-full.weights.numpy(), kind="stable")[:k]
    indicator = np.zeros(len(features))
    indicator[chosen] = 1.0
    return LinearReward(checklist, indicator).select_checklist(
        0.0, name=f"{checklist.name}-{spec.selection}{k}"
    )


def pair_accuracy(reward: LinearReward, answers_a: Any, answers_b: Any, label: Any) -> dict:
    delta = reward.score(answers_a) - reward.score(answers_b)
    label = torch.as_tensor(np.asarray(label), dtype=torch.float64)
    tau, eps = tau_star(delta, label)
    return {
        "tau_star": float(tau),
        "epsilon": float(eps),
        "diff": float(diff_accuracy(delta, label)),
    }


def write_select_checklist(reward: LinearReward, path: Path, threshold: float) -> Checklist:
    select = reward.select_checklist(threshold, name=f"{reward.checklist.name}_select")
    header = (
        f"# {select.name}: questions of {reward.checklist.name} with weight > {threshold}, written "
        "by fit_weights.\n# Copy into conf/dimensions/ to use it as dimensions="
        f"{select.name}.\n"
    )
    body = {"defaults": ["base_checklist", "_self_"], **select.to_config()}
    path.write_text(header + yaml.safe_dump(body, sort_keys=False, width=120))
    return select


def fit_weights(cfg: DictConfig, logger: Logger | None = None) -> dict[str, Any]:
    task = cfg.task
    split_dir = require_synthworld(cfg)
    checklist = Checklist.from_config(cfg.dimensions)
    parts = pair_parts(
        split_dir, val_fraction=task.val_fraction, test_fraction=task.test_fraction, seed=cfg.seed
    )
    pairs = parts["train"].sample(task.num_pairs, cfg.seed)
    table = read_annotations(task.annotations)
    checklist = question_subset(checklist, table, pairs, task)
    answers = pair_answers(table, checklist, pairs, task.hard_answers)
    out_dir = Path(task.out_dir)
    with stage_logger(cfg, logger) as logger:
        start = time.perf_counter()
        reward = fit_on_pairs(checklist, answers, pairs.label, task, logger)
        seconds = time.perf_counter() - start
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
            "encoding": task.encoding,
            "hard_answers": task.hard_answers,
            "solver": task.solver,
            "num_features": reward.num_features,
            "num_zero_weights": int((reward.weights == 0).sum()),
            "select_questions": len(select.questions),
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
    print_weights(Console(), reward, info, out_dir)
    return info


def print_weights(console: Console, reward: LinearReward, info: dict, out_dir: Path) -> None:
    table = Table(title=f"Weights of {reward.checklist.name} ({info['num_pairs']} pairs)")
    for column in ("dimension", "question", "weight"):
        table.add_column(column, justify="right" if column == "weight" else "left")
    for q, w in zip(reward.feature_questions, reward.weights.tolist(), strict=True):
        table.add_row(escape(q.dimension), escape(q.text), f"{w:.3f}")  # "[[prompt]]" is text
    console.print(table)
    console.print(
        f"{info['num_zero_weights']} of {info['num_features']} weights are 0; train tau* "
        f"{info['train']['tau_star']:.3f}, diff {info['train']['diff']:.3f}; fitted in "
        f"{info['seconds']:.2f} s; written to {out_dir}"
    )
