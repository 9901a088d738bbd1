"""The remote-code door (docs/reliability.md §3.1): loading a model folder runs none of its code.

Real tiny folders are written by the real ``save_pretrained`` and then tampered with as an
attacker would: an ``auto_map`` pointing at a Python file that writes a marker when imported, the
folder's own settings switching ``trust_remote_code`` on, pickled weights beside the safetensors,
a truncated safetensors file. Each is refused naming the folder (or file) and the key, and the
marker never appears; the user's own opt-in lets an ``auto_map`` folder load.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import compose_config
from vrexp.backbones import build_backbone, load_backbone
from vrexp.backbones.base import BACKBONE_FILE
from vrexp.checklist import Checklist
from vrexp.generators import build_generator
from vrexp.generators.base import CONFIG_FILE as GENERATOR_FILE
from vrexp.generators.loading import load_generator
from vrexp.resources import dimensions_dir
from vrexp.reward import LinearReward, VisionReward
from vrexp.trust import UntrustedFolderError, check_safetensors

TINY = (
    "backbone=tiny_qwen2_vl",
    "backbone.tiny.hidden_size=32",
    "backbone.tiny.intermediate_size=64",
    "backbone.tiny.num_layers=1",
    "backbone.tiny.vision_hidden_size=32",
    "backbone.tiny.vision_layers=1",
    "backbone.image_size=28",
)
EVIL = """
from pathlib import Path
Path({marker!r}).write_text("the folder's code ran")
"""


def tiny_backbone(root: Path):
    from omegaconf import OmegaConf

    return build_backbone(OmegaConf.to_object(compose_config(root, *TINY).backbone)).eval()


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, one_thread):
    """A real tiny checklist model folder, and the backbone that wrote it."""
    root = tmp_path_factory.mktemp("clean")
    backbone = tiny_backbone(root)
    backbone.save_pretrained(root / "model")
    return root / "model", backbone


@pytest.fixture
def folder(saved_model, tmp_path):
    """A fresh copy of the clean folder for one test to tamper with."""
    copy = tmp_path / "model"
    shutil.copytree(saved_model[0], copy)
    return copy


def plant_code(folder: Path, marker: Path, *configs: str) -> None:
    """An ``evil.py`` that writes ``marker`` when imported, and ``auto_map`` in ``configs``."""
    (folder / "evil.py").write_text(EVIL.format(marker=str(marker)))
    auto_map = {
        "config.json": {"AutoConfig": "evil.Config", "AutoModel": "evil.Model"},
        "tokenizer_config.json": {"AutoTokenizer": ["evil.Tokenizer", None]},
        "processor_config.json": {"AutoProcessor": "evil.Processor"},
    }
    for name in configs:
        path = folder / name
        settings = json.loads(path.read_text()) if path.exists() else {}
        settings["auto_map"] = auto_map[name]
        path.write_text(json.dumps(settings))


def set_folder_switch(folder: Path, file: str, value: bool = True) -> None:
    settings = json.loads((folder / file).read_text())
    settings["trust_remote_code"] = value
    (folder / file).write_text(json.dumps(settings))


@pytest.mark.parametrize(
    "configs", [("config.json",), ("tokenizer_config.json",), ("processor_config.json",)]
)
@pytest.mark.parametrize("folder_switch", [False, True], ids=["plain", "folder-grants-itself"])
def test_an_auto_map_folder_is_refused_and_its_code_never_runs(
    folder, tmp_path, configs, folder_switch
):
    marker = tmp_path / "marker"
    plant_code(folder, marker, *configs)
    if folder_switch:
        set_folder_switch(folder, BACKBONE_FILE)
    expected = "trust_remote_code=True" if folder_switch else "auto_map"
    with pytest.raises(UntrustedFolderError, match=expected) as err:
        load_backbone(folder)
    assert str(folder) in str(err.value)
    assert not marker.exists()


def test_a_folder_cannot_switch_remote_code_on_for_itself(folder):
    set_folder_switch(folder, BACKBONE_FILE)
    with pytest.raises(UntrustedFolderError, match=rf"{BACKBONE_FILE}.*trust_remote_code=True"):
        load_backbone(folder)
    # An old folder that recorded the default (false) still loads.
    set_folder_switch(folder, BACKBONE_FILE, False)
    assert load_backbone(folder) is not None


def test_the_user_s_own_opt_in_lets_an_auto_map_folder_load(folder, tmp_path, saved_model):
    """With ``trust_remote_code=True`` from the caller the folder is not refused, and transformers
    does import its code (the marker appears): the switch is real, and only the user holds it."""
    marker = tmp_path / "marker"
    plant_code(folder, marker, "config.json")
    with (folder / "evil.py").open("a") as f:  # classes that work, so the load completes
        f.write("import transformers\n\n\nclass Config(transformers.Qwen2VLConfig):\n    pass\n")
    set_folder_switch(folder, BACKBONE_FILE)  # moot once the caller opted in
    loaded = load_backbone(folder, trust_remote_code=True).eval()
    assert loaded.config.trust_remote_code is True
    assert marker.exists()
    media = [np.full((28, 28, 3), 90, np.uint8)]
    with torch.inference_mode():
        torch.testing.assert_close(
            loaded.answer_logits(media, ["Is it red?"]),
            saved_model[1].answer_logits(media, ["Is it red?"]),
        )


@pytest.mark.parametrize("name", ["pytorch_model.bin", "weights.pt", "extra/state.pkl", "x.ckpt"])
def test_a_pickle_in_a_model_folder_is_refused_by_name(folder, name):
    path = folder / name
    path.parent.mkdir(exist_ok=True)
    torch.save({"w": torch.zeros(1)}, path)
    with pytest.raises(UntrustedFolderError, match=rf"{name}.*pickle"):
        load_backbone(folder)


@pytest.mark.parametrize("keep", [0.5, 0.999, 4], ids=["half", "last-byte", "4-bytes"])
def test_a_truncated_safetensors_file_is_an_error_naming_it(folder, keep):
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: int(len(data) * keep) if keep < 1 else keep])
    with pytest.raises(UntrustedFolderError, match=rf"{weights}.*truncated or corrupt"):
        load_backbone(folder)


def test_a_corrupt_safetensors_header_is_an_error_naming_it(tmp_path):
    path = tmp_path / "w.safetensors"
    path.write_bytes((10).to_bytes(8, "little") + b"not json!!")
    with pytest.raises(UntrustedFolderError, match=rf"{path}"):
        check_safetensors(path)


def test_a_user_folder_given_as_name_or_path_is_checked_too(folder, tmp_path):
    marker = tmp_path / "marker"
    plant_code(folder, marker, "config.json")
    cfg = compose_config(tmp_path, *TINY, f"backbone.name_or_path={folder}")
    from omegaconf import OmegaConf

    with pytest.raises(UntrustedFolderError, match=r"backbone\.trust_remote_code=true"):
        build_backbone(OmegaConf.to_object(cfg.backbone))
    assert not marker.exists()


@pytest.mark.parametrize("tamper", ["auto_map", "truncated"])
def test_a_visionreward_folder_with_tampered_model_is_refused(saved_model, tmp_path, tamper):
    checklist = Checklist.from_yaml(dimensions_dir() / "synthworld_image.yaml")
    features = sum(q.kind != "presence" for q in checklist.questions)
    VisionReward(saved_model[1], LinearReward(checklist, np.ones(features))).save_pretrained(
        tmp_path / "reward"
    )
    model = tmp_path / "reward" / "checklist_model"
    marker = tmp_path / "marker"
    if tamper == "auto_map":
        plant_code(model, marker, "tokenizer_config.json")
        match = r"checklist_model.*tokenizer_config\.json has 'auto_map'"
    else:
        weights = model / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:-100])
        match = rf"{weights}.*truncated or corrupt"
    with pytest.raises(UntrustedFolderError, match=match):
        VisionReward.from_pretrained(tmp_path / "reward", device="cpu")
    assert not marker.exists()


@pytest.fixture(scope="module")
def saved_generator(tmp_path_factory, one_thread):
    import yaml
    from omegaconf import OmegaConf

    from vrexp.configs import GeneratorConfig
    from vrexp.resources import config_dir

    raw = yaml.safe_load((config_dir() / "generator" / "tiny_sd.yaml").read_text())
    raw.pop("defaults", None)
    small = {"image_size": 16, "tiny": {"block_out_channels": [32, 32], "norm_num_groups": 8}}
    cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(GeneratorConfig), raw, small))
    root = tmp_path_factory.mktemp("gen")
    build_generator(cfg).save_pretrained(root / "generator")
    return root / "generator"


@pytest.mark.parametrize(
    "tamper",
    ["auto_map", "folder_switch", "pickle", "truncated"],
)
def test_a_tampered_generator_folder_is_refused(saved_generator, tmp_path, tamper):
    folder = tmp_path / "generator"
    shutil.copytree(saved_generator, folder)
    marker = tmp_path / "marker"
    if tamper == "auto_map":
        (folder / "unet" / "evil.py").write_text(EVIL.format(marker=str(marker)))
        config = json.loads((folder / "unet" / "config.json").read_text())
        config["auto_map"] = {"AutoModel": "evil.Model"}
        (folder / "unet" / "config.json").write_text(json.dumps(config))
        match = r"unet/config\.json.*auto_map"
    elif tamper == "folder_switch":
        set_folder_switch(folder, GENERATOR_FILE)
        match = rf"{GENERATOR_FILE}.*trust_remote_code"
    elif tamper == "pickle":
        torch.save({}, folder / "text_encoder" / "pytorch_model.bin")
        match = r"text_encoder/pytorch_model\.bin.*pickle"
    else:
        weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
        weights.write_bytes(weights.read_bytes()[:-7])
        match = rf"{weights}.*truncated"
    with pytest.raises(UntrustedFolderError, match=match):
        load_generator(folder)
    assert not marker.exists()
    assert load_generator(saved_generator) is not None  # the untouched folder loads
