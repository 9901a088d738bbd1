"""The single entry point: ``python run.py task=<stage> [group=option ...] [--multirun]``."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

import vrexp.configs  # noqa: F401  (registers the structured-config schemas)
from vrexp.tasks import run_task


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    run_task(cfg)


if __name__ == "__main__":
    main()
