"""Schema of the root config and of ``paths/``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING


@dataclass
class PathsConfig:
    root_dir: str = "."  # relative paths are relative to where the command is started
    data_dir: str = "${paths.root_dir}/data"  # rendered splits (safe to delete: re-rendered)
    log_dir: str = "${paths.root_dir}/logs"  # run and sweep folders
    # Models and annotations shared by the jobs of a sweep; kept apart from data/ so that
    # deleting the data never deletes a trained model.
    artifacts_dir: str = "${paths.root_dir}/artifacts"
    # Local snapshots of the real datasets, one folder per Hugging Face repository (e.g.
    # datasets/HPDv2): the default dataset.root of every real dataset option.
    datasets_dir: str = "${paths.root_dir}/datasets"
    output_dir: str = "${hydra:runtime.output_dir}"  # the run (or multirun job) folder


@dataclass
class VrexpConfig:
    task: Any = MISSING
    dataset: Any = MISSING
    dimensions: Any = MISSING
    backbone: Any = MISSING
    generator: Any = None
    dpo: Any = None
    paths: PathsConfig = field(default_factory=PathsConfig)
    logger: Any = None
    trainer: Any = MISSING
    callbacks: Any = None
    seed: int = 0  # initialises models and training order; the data's seeds live in dataset
    # torch's intra-op CPU threads. A model trained on another count differs (its float sums run
    # in another order), so a fixed count gives the same numbers on any CPU; tiny models run as
    # fast on one. null: torch's own default (OMP_NUM_THREADS, else every core).
    cpu_threads: int | None = 1
