"""Versions: the format of the folders vrexp writes, and the packages a result was computed with.

Each folder's JSON config carries ``format_version`` (the layout of the folder, bumped when a
change would make older code misread it) and ``vrexp_version`` (the release that wrote it, for
information). On load, a folder newer than the code is refused with both versions named; a folder
written before versions existed has no ``format_version`` and reads as version 0.

A trained model or a table is fixed by vrexp's code, its config and the versions of the packages
whose kernels and initialisers it ran (another torch or transformers sums floats in another order
and gives another model from the same seed). :func:`package_versions` records those, for a model
folder's ``trained_on.json``, every run folder's ``environment.json`` and a published table's
header.
"""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import vrexp

FORMAT_VERSION = 1
VERSION_KEYS = ("format_version", "vrexp_version")
# The distributions whose versions change a result's numbers (kernels, initialisers, tokenisers,
# solvers, codecs), in the order a table's header names them.
NUMERIC_PACKAGES = (
    "torch",
    "transformers",
    "pytorch-lightning",
    "tokenizers",
    "diffusers",
    "peft",
    "numpy",
    "scipy",
    "av",
    "pillow",
)


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


def package_versions(packages: tuple[str, ...] = NUMERIC_PACKAGES) -> dict[str, str | None]:
    """Python's and each of ``packages``' installed version (None: not installed)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def cpu_description() -> dict[str, str]:
    """The CPU's model name and the instruction set torch's CPU kernels use (``AVX2``,
    ``AVX512``...): two machines with the same packages can differ in float results through
    these, so a result records them beside the versions."""
    import torch

    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    return {"model": model, "torch_capability": str(torch.backends.cpu.get_cpu_capability())}


def describe_packages(versions: dict[str, str | None], first: int = 4) -> str:
    """The ``first`` packages of ``versions`` as ``"torch 2.13.0+cpu, transformers 5.24.0, ..."``
    (those not installed left out)."""
    named = [(k, v) for k, v in versions.items() if k != "python" and v is not None]
    return ", ".join(f"{k} {v}" for k, v in named[:first])
