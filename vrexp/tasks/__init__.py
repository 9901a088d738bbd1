"""One function per pipeline stage; ``run.py`` dispatches on ``cfg.task.name``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig

from vrexp.configs.schema import check_known_keys
from vrexp.tasks.annotate import annotate
from vrexp.tasks.evaluate import evaluate
from vrexp.tasks.fit_weights import fit_weights
from vrexp.tasks.make_data import make_data
from vrexp.tasks.pipeline import pipeline
from vrexp.tasks.train_checklist import train_checklist

TASKS: dict[str, Callable[[DictConfig], Any]] = {
    "make_data": make_data,
    "train_checklist": train_checklist,
    "annotate": annotate,
    "fit_weights": fit_weights,
    "evaluate": evaluate,
    "pipeline": pipeline,
}


def run_task(cfg: DictConfig) -> Any:
    check_known_keys(cfg)
    name = cfg.task.name
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; available: {sorted(TASKS)}")
    return TASKS[name](cfg)


__all__ = ["TASKS", "run_task"]
