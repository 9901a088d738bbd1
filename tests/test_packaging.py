"""Packaging: data files found through vrexp.resources, pyproject's package list."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT
from vrexp import resources

tomllib = pytest.importorskip("tomllib")  # Python 3.11+


def test_resources_are_this_checkout_s_folders():
    assert resources.config_dir() == ROOT / "conf"
    assert (resources.config_dir() / "config.yaml").is_file()
    assert sorted(p.name for p in resources.dimensions_dir().glob("*.yaml")) == sorted(
        p.name for p in (ROOT / "conf" / "dimensions").glob("*.yaml")
    )
    assert (resources.official_dir() / "image_weight.json").is_file()


def test_pyproject_lists_every_package_and_maps_the_data_folders():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    code = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "vrexp").rglob("__init__.py")
    }
    assert set(setuptools["packages"]) == code | {"vrexp.conf", "vrexp.experiments"}
    assert setuptools["package-dir"] == {"vrexp.conf": "conf", "vrexp.experiments": "experiments"}
    assert not (ROOT / "vrexp" / "conf").exists()  # one copy of the data: the top-level conf/
    suffixes = {p.suffix or p.name for p in (ROOT / "conf").rglob("*") if p.is_file()}
    shipped = {
        pattern.removeprefix("**/*").removeprefix("**/")
        for pattern in setuptools["package-data"]["vrexp.conf"]
    }
    assert suffixes <= shipped, suffixes - shipped
