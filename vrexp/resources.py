"""Where the package's data files are: the Hydra config tree, the checklists, the official weights.

The repository's top-level ``conf/`` (and ``experiments/``, when present) is the only copy of these
files. ``pyproject.toml`` maps it into the package as ``vrexp.conf`` (``vrexp.experiments``), so a
wheel installs it as ``site-packages/vrexp/conf`` and an editable install resolves ``vrexp.conf``
to the repository's ``conf/``. Code asks this module instead of building paths from ``__file__``.

Lookup order:

1. A source checkout: when ``vrexp`` is imported from a repository (an editable install, or
   ``python run.py`` / ``python -m pytest`` at the root of a clone or git worktree), that
   checkout's own ``conf/`` is used, even if another checkout is installed editable in the same
   environment. (This is also what serves editable installs: setuptools' editable finder does not
   resolve a mapped folder without ``__init__.py`` below a regular package, so there
   ``importlib.util.find_spec("vrexp.conf")`` is None; ``conf/`` gets no ``__init__.py``, which
   would litter the config tree with ``__pycache__``.)
2. The installed package data (a wheel): ``site-packages/vrexp/conf``, found through
   ``importlib`` as the namespace package ``vrexp.conf``.

Every function returns a real directory (``pathlib.Path``): Hydra needs one, and the package is
always installed unzipped.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
_CHECKOUT = _PACKAGE_DIR.parent


class ResourceError(FileNotFoundError):
    """A data folder the package needs is neither in a source checkout nor installed."""


def _is_checkout() -> bool:
    pyproject = _CHECKOUT / "pyproject.toml"
    return pyproject.is_file() and 'name = "vrexp"' in pyproject.read_text(encoding="utf-8")


@cache
def _data_dir(folder: str, marker: str | None) -> Path:
    """``<checkout>/<folder>`` in a source checkout, else the installed ``vrexp.<folder>``."""
    if _is_checkout() and (_CHECKOUT / folder).is_dir():
        return _CHECKOUT / folder
    try:
        spec = importlib.util.find_spec(f"vrexp.{folder}")
    except ModuleNotFoundError:
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location)
        if path.is_dir() and (marker is None or (path / marker).exists()):
            return path
    raise ResourceError(
        f"vrexp's {folder}/ data folder is not installed (looked for the package vrexp.{folder} and "
        f"for {_CHECKOUT / folder}); reinstall vrexp (`pip install vrexp` or `pip install -e .` in a "
        "clone)"
    )


def config_dir() -> Path:
    """The Hydra config tree (``conf/``: ``config.yaml`` and the config groups)."""
    return _data_dir("conf", "config.yaml")


def dimensions_dir() -> Path:
    """The checklist YAMLs (``conf/dimensions/``); the tiny tokenizers are trained on them."""
    return config_dir() / "dimensions"


def official_dir() -> Path:
    """The released VisionReward files (question lists, weights, checklists, their LICENSE)."""
    return config_dir() / "official" / "visionreward"


def experiments_dir() -> Path | None:
    """The experiment configs (``experiments/*.yaml``), or None where none are shipped."""
    try:
        return _data_dir("experiments", None)
    except ResourceError:
        return None
