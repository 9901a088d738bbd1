"""vrexp: fine-grained, multi-dimensional, interpretable preference rewards for image and video
generation (a reimplementation of VisionReward, arXiv 2412.21059)."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path


def _version() -> str:
    """The installed distribution's version; in a source checkout, its pyproject.toml's (which an
    editable install's metadata can lag behind, and which another installed tree does not share)."""
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    if pyproject.is_file():
        text = pyproject.read_text(encoding="utf-8")
        if re.search(r'^name = "vrexp"$', text, re.M):
            match = re.search(r'^version = "([^"]+)"$', text, re.M)
            if match:
                return match.group(1)
    try:
        return metadata.version("vrexp")
    except metadata.PackageNotFoundError:
        return "0+unknown"


__version__ = _version()
