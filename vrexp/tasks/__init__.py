"""One function per stage, and the task wrapper that ``run.py`` (and the ``vrexp`` command) calls.

:func:`run_task` lays out a chain's folders, validates the whole config before any work starts,
records the package versions it runs with (``environment.json``), runs the task, says where its
outputs are and returns the task's metric (for a sweeper such as Optuna). A failure is logged,
written to ``failed.json`` in the run folder and re-raised, so the job (exit status), its W&B run
(exit code 1), ``run.log`` and its sweep's table record it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from vrexp.atomic import atomic_write
from vrexp.configs import validate_config
from vrexp.configs.versioning import cpu_description, package_versions, stamp
from vrexp.reports.sweep import clear_failure, job_overrides, write_failure
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

ENVIRONMENT_FILE = "environment.json"  # in every run folder: what the numbers were computed with

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

# The value each task returns to a sweeper (higher is better), read from its result. A search
# chooses on validation, never on the test split (train_checklist: its best checkpoint's val/acc).
METRICS: dict[str, Callable[[Any], float | None]] = {
    "train_checklist": lambda r: r["best_val_acc"],
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
    name = cfg.task.name
    # Which process and machine ran the job: a sweep's jobs may run in other processes or nodes.
    log.info("task %s: pid %d on %s", name, os.getpid(), socket.gethostname())
    _forget_failure(cfg)
    try:
        prepare(cfg)
    except Exception as err:  # the message names the key; Hydra prints it
        _record_failure(cfg, err)
        raise
    if cfg.cpu_threads is not None:
        torch.set_num_threads(cfg.cpu_threads)
    _record_environment(cfg)
    try:
        # One logger run for the whole task: a failure anywhere in it marks that run failed.
        with stage_logger(cfg) as logger:
            result = TASKS[name](cfg, logger)
    except Exception as err:
        log.exception("task %s failed; its run folder is %s", name, cfg.paths.output_dir)
        _record_failure(cfg, err)
        raise
    except BaseException as err:  # Ctrl-C, or SIGTERM (stop_on_sigterm): stopped, not finished
        log.error(
            "task %s stopped (%s); its run folder is %s", name, _why(err), cfg.paths.output_dir
        )
        _record_failure(cfg, err)
        raise
    log.info("outputs of %s: %s", name, cfg.paths.output_dir)
    metric = METRICS.get(name)
    try:
        return None if metric is None else metric(result)
    except (KeyError, IndexError, TypeError):
        return None


def _why(err: BaseException) -> str:
    if isinstance(err, SystemExit) and isinstance(err.code, int) and err.code > 128:
        return f"signal {signal.Signals(err.code - 128).name}"
    return type(err).__name__


def _record_environment(cfg: DictConfig) -> None:
    """``environment.json`` in the run folder: the host, its CPU and threads, and the package
    versions."""
    record = stamp(
        {
            "host": socket.gethostname(),
            "cpu_count": os.cpu_count(),
            "cpu": cpu_description(),
            "torch_threads": torch.get_num_threads(),
            "packages": package_versions(),
        }
    )
    payload = json.dumps(record, indent=2) + "\n"
    atomic_write(Path(cfg.paths.output_dir) / ENVIRONMENT_FILE, lambda p: p.write_text(payload))


def _forget_failure(cfg: DictConfig) -> None:
    """Remove an earlier attempt's ``failed.json`` from the run folder (a resumed sweep)."""
    try:
        out_dir = OmegaConf.select(cfg, "paths.output_dir", default=None)
        if out_dir:
            clear_failure(out_dir)
    except Exception as err:  # an unresolvable path fails in prepare, with a better message
        log.debug("no earlier failure cleared: %s", err)


def _record_failure(cfg: DictConfig, err: BaseException) -> None:
    """``failed.json`` in the run folder, for the sweep's table; never hides the error itself."""
    try:
        out_dir = OmegaConf.select(cfg, "paths.output_dir", default=None)
        if out_dir:
            write_failure(out_dir, cfg.task.name, err, job_overrides())
    except Exception as write_err:  # e.g. a read-only folder: the original error matters more
        log.warning("could not record the failure in failed.json: %s", write_err)


def stop_on_sigterm() -> None:
    """Turn SIGTERM (a scheduler's timeout, ``kill``) into ``SystemExit(143)`` in the main
    thread, so a stopped job unwinds: its W&B run finishes failed, ``run.log`` and ``failed.json``
    say it stopped. Lightning installs its own handler while a Trainer runs."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, _: sys.exit(128 + signum))


__all__ = ["TASKS", "prepare", "run_task", "stop_on_sigterm"]
