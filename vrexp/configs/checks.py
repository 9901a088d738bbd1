"""Range checks shared by the schemas' ``__post_init__`` methods (which run at validation)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ConfigValueError(ValueError):
    """A config value out of its range; the message names the key."""


def require(where: str, checks: Mapping[str, bool], source: Any) -> None:
    """Raise naming the first key whose check is False (``where`` is its group, e.g. ``task``)."""
    for key, ok in checks.items():
        if not ok:
            value = getattr(source, key.split(" ")[0], None)
            raise ConfigValueError(f"{where}.{key}={value!r} is out of range")


def looks_like_local_path(source: str) -> bool:
    """True for a ``name_or_path`` that can only be a folder: a hub id is ``name`` or
    ``owner/name``, never absolute, relative to ``.`` or ``~``, or nested deeper."""
    return source.startswith((".", "/", "~")) or "\\" in source or source.count("/") > 1


def require_model_folder(source: str, key: str) -> None:
    """A ``name_or_path`` that looks like a local folder must exist (else it would be taken for
    a hub id and fail with download advice)."""
    from pathlib import Path

    if looks_like_local_path(source) and not Path(source).expanduser().is_dir():
        raise ConfigValueError(f"{key}={source!r}: that folder does not exist")
