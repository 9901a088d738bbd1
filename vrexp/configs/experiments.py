"""The ``experiment`` config group, read from the top-level ``experiments/`` folder.

Hydra looks a group up as ``<search-path root>/<group>/<name>.yaml``, so no search-path entry can
make ``experiments/*.yaml`` the ``experiment`` group, and ``file://`` entries in a config are
relative to the process's cwd. Instead each ``experiments/NAME.yaml`` is stored in Hydra's
ConfigStore as ``experiment/NAME`` (the always-present ``structured://`` search-path entry), with
the package from its ``# @package`` header. It happens when :mod:`vrexp.configs` is imported
(``run.py`` and the tests do), so ``python run.py experiment=NAME`` works from any cwd; the YAML
files stay the one place an experiment is written.

The folder is :func:`vrexp.resources.experiments_dir`: ``experiments/`` in a checkout, or the
``vrexp.experiments`` package data of a wheel.
"""

from __future__ import annotations

import re
from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from vrexp.resources import experiments_dir

GROUP = "experiment"
_PACKAGE = re.compile(r"^#\s*@package\s+(\S+)\s*$")


def experiment_files() -> dict[str, Path]:
    """Experiment name -> its YAML file, sorted by name (none where no experiments ship)."""
    folder = experiments_dir()
    return {} if folder is None else {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def description(path: Path) -> str:
    """The first comment line after the ``# @package`` header: an experiment's one-line summary."""
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        if not _PACKAGE.match(line):
            return line.lstrip("# ").strip()
    return ""


def _package(path: Path) -> str | None:
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        if match := _PACKAGE.match(line):
            return match.group(1)
    return None


def register_experiments() -> None:
    """Store every ``experiments/NAME.yaml`` as the config ``experiment/NAME``."""
    try:
        files = experiment_files()
    except FileNotFoundError:  # an install without the experiments: the group is empty
        return
    cs = ConfigStore.instance()
    for name, path in files.items():
        node = OmegaConf.load(path)
        cs.store(group=GROUP, name=name, node=node, package=_package(path), provider="vrexp")
