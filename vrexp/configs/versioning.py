"""Format versions of the folders vrexp writes (checklist models, generators, VisionReward).

Each folder's JSON config carries ``format_version`` (the layout of the folder, bumped when a
change would make older code misread it) and ``vrexp_version`` (the release that wrote it, for
information). On load, a folder newer than the code is refused with both versions named; a folder
written before versions existed has no ``format_version`` and reads as version 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import vrexp

FORMAT_VERSION = 1
VERSION_KEYS = ("format_version", "vrexp_version")


class FolderFormatError(ValueError):
    """A saved folder in a format this vrexp cannot read."""


def stamp(settings: dict[str, Any], version: int = FORMAT_VERSION) -> dict[str, Any]:
    """``settings`` with the format version and the writing vrexp's version first."""
    return {"format_version": version, "vrexp_version": vrexp.__version__, **settings}


def check_format(
    directory: str | Path, settings: dict[str, Any], supported: int = FORMAT_VERSION
) -> tuple[int, dict[str, Any]]:
    """The folder's format version (0 when absent) and ``settings`` without the version keys;
    raises :class:`FolderFormatError` for a folder newer than ``supported``."""
    found = settings.get("format_version", 0)
    if not isinstance(found, int) or found < 0:
        raise FolderFormatError(f"{directory}: format_version={found!r} is not a version number")
    if found > supported:
        raise FolderFormatError(
            f"{directory} has format_version {found} (written by vrexp "
            f"{settings.get('vrexp_version', '?')}); this vrexp ({vrexp.__version__}) reads "
            f"format_version {supported} at most: upgrade vrexp to load it"
        )
    return found, {k: v for k, v in settings.items() if k not in VERSION_KEYS}
