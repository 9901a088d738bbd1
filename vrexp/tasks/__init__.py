"""One function per stage, and the task wrapper that ``run.py`` (and the ``vrexp`` command) calls.

:func:`run_task` lays out a chain's folders, validates the whole config before any work starts,
runs the task, says where its outputs are and returns the task's metric (for a sweeper such as
Optuna). A failure is logged and re-raised, so the job, its W&B run and its sweep record it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig

from vrexp.configs import validate_config
from vrexp.tasks.annotate import annotate
from vrexp.tasks.benchmark import benchmark
from vrexp.tasks.build_pairs import build_pairs
from vrexp.tasks.eval_generator import eval_generator
from vrexp.tasks.evaluate import evaluate
from vrexp.tasks.fit_weights import fit_weights
from vrexp.tasks.make_data import make_data
from vrexp.tasks.optimize_generator import layout as optimize_generator_layout
from vrexp.tasks.optimize_generator import optimize_generator
from vrexp.tasks.pipeline import layout as pipeline_layout
from vrexp.tasks.pipeline import pipeline
from vrexp.tasks.sample import sample
from vrexp.tasks.score import score
from vrexp.tasks.train_checklist import train_checklist
from vrexp.tasks.train_dpo import train_dpo
from vrexp.tasks.train_generator import train_generator
from vrexp.tracking import stage_logger

log = logging.getLogger(__name__)

TASKS: dict[str, Callable[[DictConfig, Any], Any]] = {
    "make_data": make_data,
    "train_checklist": train_checklist,
    "annotate": annotate,
    "fit_weights": fit_weights,
    "evaluate": evaluate,
    "pipeline": pipeline,
    "score": score,
    "benchmark": benchmark,
    "train_generator": train_generator,
    "sample": sample,
    "build_pairs": build_pairs,
    "train_dpo": train_dpo,
    "eval_generator": eval_generator,
    "optimize_generator": optimize_generator,
}

# Chains compute their stages' folders before validation (they are mandatory in each stage).
LAYOUTS: dict[str, Callable[[DictConfig], None]] = {
    "pipeline": lambda cfg: pipeline_layout(cfg.task, cfg.paths.output_dir),
    "optimize_generator": optimize_generator_layout,
}

# The value each task returns to a sweeper (higher is better), read from its result.
METRICS: dict[str, Callable[[Any], float | None]] = {
    "train_checklist": lambda r: r["test"].get("mean"),
    "evaluate": lambda r: r["rows"][0]["tau_star"],
    "pipeline": lambda r: r["rows"][0]["tau_star"],
    "fit_weights": lambda r: r["train"]["tau_star"],
    "benchmark": lambda r: r["metrics"][r["protocols"][0]],
    "train_generator": lambda r: -r["val_loss"],
    "optimize_generator": lambda r: r["rows"][-1].get("oracle_win_rate"),
}


def prepare(cfg: DictConfig) -> dict[str, Any]:
    """Lay out a chain's folders and validate every group; returns the groups as objects."""
    name = cfg.task.name
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; available: {sorted(TASKS)}")
    if name in LAYOUTS:
        LAYOUTS[name](cfg)
    return validate_config(cfg)


def run_task(cfg: DictConfig) -> float | None:
    """Validate, run, report where the outputs are; the task's metric for a sweeper."""
    prepare(cfg)
    name = cfg.task.name
    try:
        # One logger run for the whole task: a failure anywhere in it marks that run failed.
        with stage_logger(cfg) as logger:
            result = TASKS[name](cfg, logger)
    except Exception:
        log.exception("task %s failed; its run folder is %s", name, cfg.paths.output_dir)
        raise
    log.info("outputs of %s: %s", name, cfg.paths.output_dir)
    metric = METRICS.get(name)
    try:
        return None if metric is None else metric(result)
    except (KeyError, IndexError, TypeError):
        return None


__all__ = ["TASKS", "prepare", "run_task"]
