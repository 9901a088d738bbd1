"""``python run.py --help``: tasks, experiments and config groups, one line each.

The text is ``conf/hydra/help/vrexp.yaml``; its lists come from the ``${vrexp_help:...}``
resolver below, which reads the config tree, so they never go stale. A task's or experiment's
line is the first comment line of its YAML file (after ``# @package``): the one place it is
written.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from vrexp.configs.experiments import description, experiment_files
from vrexp.resources import config_dir

HIDDEN_GROUPS = {"hydra", "official"}  # Hydra's own settings; data files, not options


def _listing(entries: dict[str, Path]) -> str:
    width = max(map(len, entries)) + 2
    return "\n".join(f"  {name:<{width}}{description(path)}" for name, path in entries.items())


def _groups() -> str:
    groups = {
        d.name: sorted(p.stem for p in d.glob("*.yaml"))
        for d in sorted(config_dir().iterdir())
        if d.is_dir() and d.name not in HIDDEN_GROUPS
    }
    groups["task"] = groups["experiment"] = ["(above)"]
    width = max(map(len, groups)) + 2
    return "\n".join(
        f"  {group:<{width}}{', '.join(options)}" for group, options in sorted(groups.items())
    )


def help_section(what: str) -> str:
    """``tasks``, ``experiments`` or ``groups``: the lines of that part of the help."""
    if what == "tasks":
        return _listing({p.stem: p for p in sorted((config_dir() / "task").glob("*.yaml"))})
    if what == "experiments":
        return _listing(experiment_files())
    if what == "groups":
        return _groups()
    raise ValueError(f"vrexp_help: unknown section {what!r} (tasks, experiments, groups)")


def register_help_resolver() -> None:
    if not OmegaConf.has_resolver("vrexp_help"):
        OmegaConf.register_new_resolver("vrexp_help", help_section)
