"""Shared fixtures: composing the real config tree and running the real entry point."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

import vrexp.configs  # noqa: F401  (registers the schemas)

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
EXPERIMENTS = ROOT / "experiments"


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``-n auto``: a worker per core) each worker, and each ``run.py`` it
    starts, computes on one thread: toy tensors gain nothing from more, and two workers with a
    thread per core each would wait on each other's descheduled threads."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)


def compose_config(root: Path, *overrides: str) -> DictConfig:
    """Compose ``conf/config.yaml`` with overrides, with every path inside ``root``."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(
            config_name="config",
            overrides=[f"paths.root_dir={root}", f"paths.output_dir={root}/out", *overrides],
        )


def compose_with_hydra(root: Path, *overrides: str) -> DictConfig:
    """As :func:`compose_config`, with the ``hydra`` node (sweeper, launcher, callbacks) kept."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(
            config_name="config",
            overrides=[f"paths.root_dir={root}", *overrides],
            return_hydra_config=True,
        )


@pytest.fixture
def compose_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    return functools.partial(compose_config, tmp_path)


def run_cli(*args: str, cwd: Path = ROOT, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``python run.py ARGS`` as a user would, with W&B kept offline."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def one_thread():
    """Toy tensors gain nothing from intra-op threads, and on a shared CPU every op of a second
    thread waits at a barrier for a descheduled peer: about 20x slower here."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
