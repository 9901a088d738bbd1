"""One function per pipeline stage; ``run.py`` dispatches on ``cfg.task.name``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig

from vrexp.configs.schema import check_known_keys
from vrexp.tasks.annotate import annotate
from vrexp.tasks.build_pairs import build_pairs
from vrexp.tasks.eval_generator import eval_generator
from vrexp.tasks.evaluate import evaluate
from vrexp.tasks.fit_weights import fit_weights
from vrexp.tasks.make_data import make_data
from vrexp.tasks.optimize_generator import optimize_generator
from vrexp.tasks.pipeline import pipeline
from vrexp.tasks.sample import sample
from vrexp.tasks.train_checklist import train_checklist
from vrexp.tasks.train_dpo import train_dpo
from vrexp.tasks.train_generator import train_generator

TASKS: dict[str, Callable[[DictConfig], Any]] = {
    "make_data": make_data,
    "train_checklist": train_checklist,
    "annotate": annotate,
    "fit_weights": fit_weights,
    "evaluate": evaluate,
    "pipeline": pipeline,
    "train_generator": train_generator,
    "sample": sample,
    "build_pairs": build_pairs,
    "train_dpo": train_dpo,
    "eval_generator": eval_generator,
    "optimize_generator": optimize_generator,
}


def run_task(cfg: DictConfig) -> Any:
    check_known_keys(cfg)
    name = cfg.task.name
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; available: {sorted(TASKS)}")
    return TASKS[name](cfg)


__all__ = ["TASKS", "run_task"]
