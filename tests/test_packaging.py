"""Packaging: data files found through vrexp.resources, pyproject's package list, saved folders'
format versions (round trip, newer refused, older without the key loads), the package versions
recorded with results."""

from __future__ import annotations

import json
import platform
import re
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch

import vrexp
from tests.conftest import ROOT
from tests.test_backbones import backbone_config
from tests.test_generators import generator_config
from vrexp import resources
from vrexp.backbones import build_backbone, load_backbone
from vrexp.backbones.base import BACKBONE_FILE
from vrexp.checklist import Checklist
from vrexp.configs.versioning import (
    FORMAT_VERSION,
    FolderFormatError,
    check_format,
    describe_packages,
    package_versions,
)
from vrexp.generators import build_generator, load_generator
from vrexp.generators.base import CONFIG_FILE
from vrexp.reward import LinearReward
from vrexp.reward.scorer import CONFIG, load_reward_files, save_reward_files

tomllib = pytest.importorskip("tomllib")  # Python 3.11+


def test_resources_are_this_checkout_s_folders():
    assert resources.config_dir() == ROOT / "conf"
    assert (resources.config_dir() / "config.yaml").is_file()
    assert sorted(p.name for p in resources.dimensions_dir().glob("*.yaml")) == sorted(
        p.name for p in (ROOT / "conf" / "dimensions").glob("*.yaml")
    )
    assert (resources.official_dir() / "image_weight.json").is_file()


def test_vrexp_data_resolver_gives_the_data_folders():
    from omegaconf import OmegaConf

    import vrexp.configs  # noqa: F401  (registers the resolvers)

    cfg = OmegaConf.create({"c": "${vrexp_data:conf}", "e": "${vrexp_data:experiments}"})
    assert cfg.c == str(ROOT / "conf") and cfg.e == str(ROOT / "experiments")


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


def test_version_is_the_pyproject_version():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert vrexp.__version__ == pyproject["project"]["version"]


def test_check_format_reads_old_folders_as_version_0_and_refuses_newer(tmp_path):
    assert check_format(tmp_path, {"a": 1}) == (0, {"a": 1})
    assert check_format(tmp_path, {"format_version": 1, "vrexp_version": "0.1.0", "a": 1}) == (
        1,
        {"a": 1},
    )
    message = f"{tmp_path} has format_version 7 (written by vrexp 9.0); this vrexp"
    with pytest.raises(FolderFormatError, match=re.escape(message)) as err:
        check_format(tmp_path, {"format_version": 7, "vrexp_version": "9.0"})
    assert f"reads format_version {FORMAT_VERSION} at most" in str(err.value)


def test_package_versions_name_the_installed_ones_and_leave_out_the_absent():
    versions = package_versions(("torch", "pytorch-lightning", "no-such-distribution", "numpy"))
    assert versions == {
        "python": platform.python_version(),
        "torch": metadata.version("torch"),
        "pytorch-lightning": metadata.version("pytorch-lightning"),
        "no-such-distribution": None,
        "numpy": metadata.version("numpy"),
    }
    torch_version, lightning = metadata.version("torch"), metadata.version("pytorch-lightning")
    expected = f"torch {torch_version}, pytorch-lightning {lightning}"
    assert describe_packages(versions, first=2) == expected
    assert describe_packages(versions).endswith(f"numpy {metadata.version('numpy')}")


def _edit(path: Path, **changes) -> dict:
    settings = json.loads(path.read_text())
    settings.update(changes)
    settings = {k: v for k, v in settings.items() if v is not None}
    path.write_text(json.dumps(settings))
    return settings


QUESTION = ["Is the image very clear?"]


def test_backbone_folder_versions_and_load_switches(tmp_path):
    backbone = build_backbone(backbone_config(tmp_path, "tiny_qwen2_vl")).eval()
    folder = tmp_path / "model"
    backbone.save_pretrained(folder)
    settings = json.loads((folder / BACKBONE_FILE).read_text())
    assert settings["format_version"] == 1 and settings["vrexp_version"] == vrexp.__version__
    assert not {"name_or_path", "local_files_only", "trust_remote_code"} & set(settings)
    media = [np.zeros((32, 32, 3), dtype=np.uint8)]
    with torch.inference_mode():
        expected = backbone.answer(media, QUESTION)
        torch.testing.assert_close(load_backbone(folder).eval().answer(media, QUESTION), expected)
        # A folder written before versions (no key; load switches saved): loads, switches ignored.
        _edit(
            folder / BACKBONE_FILE,
            format_version=None,
            vrexp_version=None,
            name_or_path="/elsewhere",
            local_files_only=False,
        )
        again = load_backbone(folder, local_files_only=True).eval()
        assert again.config.name_or_path == str(folder) and again.config.local_files_only
        torch.testing.assert_close(again.answer(media, QUESTION), expected)
    _edit(folder / BACKBONE_FILE, format_version=2, vrexp_version="9.9")
    with pytest.raises(FolderFormatError, match=f"{re.escape(str(folder))} has format_version 2"):
        load_backbone(folder)


def test_generator_folder_versions_and_load_switches(tmp_path):
    generator = build_generator(generator_config("tiny_sd", variant="fp16")).eval()
    folder = tmp_path / "gen"
    generator.save_pretrained(folder)
    settings = json.loads((folder / CONFIG_FILE).read_text())
    assert settings["format_version"] == 1 and settings["vrexp_version"] == vrexp.__version__
    assert not {"name_or_path", "local_files_only", "variant"} & set(settings)
    expected = generator.generate(["a red circle"], [1])
    loaded = load_generator(folder).eval()
    assert loaded.config.variant is None and loaded.config.name_or_path == str(folder)
    np.testing.assert_array_equal(loaded.generate(["a red circle"], [1]), expected)
    _edit(folder / CONFIG_FILE, format_version=None, vrexp_version=None, variant="fp16")
    np.testing.assert_array_equal(load_generator(folder).generate(["a red circle"], [1]), expected)
    _edit(folder / CONFIG_FILE, format_version=3)
    with pytest.raises(FolderFormatError, match=f"{re.escape(str(folder))} has format_version 3"):
        load_generator(folder)


def test_reward_folder_versions(tmp_path):
    checklist = Checklist.from_yaml(resources.dimensions_dir() / "synthworld_image.yaml")
    weights = np.linspace(0.1, 1.0, sum(q.kind != "presence" for q in checklist.questions))
    save_reward_files(tmp_path, LinearReward(checklist, weights), hard_answers=True)
    saved = json.loads((tmp_path / CONFIG).read_text())
    assert saved == {"format_version": 1, "vrexp_version": vrexp.__version__, "hard_answers": True}
    assert load_reward_files(tmp_path)[1] == {"hard_answers": True}
    _edit(tmp_path / CONFIG, format_version=None, vrexp_version=None)
    assert load_reward_files(tmp_path)[1] == {"hard_answers": True}
    _edit(tmp_path / CONFIG, format_version=2)
    with pytest.raises(FolderFormatError, match=f"{re.escape(str(tmp_path))} has format_version 2"):
        load_reward_files(tmp_path)
