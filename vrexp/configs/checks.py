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
