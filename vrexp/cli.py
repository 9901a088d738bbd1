"""The ``vrexp`` console command: ``vrexp task=<stage> [group=option ...] [--multirun]``.

The one Hydra app: ``run.py`` at the repository root calls :func:`main` too. The config tree is the
package's ``conf/`` (:func:`vrexp.resources.config_dir`: the checkout's own folder in a source
checkout, ``site-packages/vrexp/conf`` in a wheel), so the command runs from any directory;
relative paths (``paths.root_dir`` defaults to ``.``) are relative to where it is started.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

import vrexp.configs  # noqa: F401  (registers the structured-config schemas)
from vrexp.resources import config_dir
from vrexp.tasks import run_task, stop_on_sigterm


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
def main(cfg: DictConfig) -> float | None:
    stop_on_sigterm()  # a killed job unwinds and is recorded as stopped
    return run_task(cfg)  # a sweeper (Optuna) optimises the returned metric


if __name__ == "__main__":
    main()
