"""Every value is checked where it enters (docs/reliability.md §3).

Config settings are refused before any work with the key named (a wrong choice also lists the
valid values, from the enums); a VisionReward folder's ``reward_config.json`` is checked with the
file named; special tokens spelt in a prompt never reach the model as control-token ids; media
paths stay inside their folder; prompts files report the right line, read every prompt as text
and refuse an empty table; empty arrays are refused by the scorer.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from tests.conftest import compose_config
from vrexp.backbones import build_backbone
from vrexp.checklist import Checklist, fill_prompt
from vrexp.configs import FrameSampling, GeneratorConfig, validate_config
from vrexp.configs.backbone import LoraSettings, TinyModelConfig
from vrexp.configs.checks import ConfigValueError
from vrexp.configs.choices import ChoiceError, Granularity
from vrexp.configs.dataset import UtilityConfig
from vrexp.configs.generator import GeneratorLora, TinyGeneratorConfig
from vrexp.configs.generator_tasks import SampleTaskConfig
from vrexp.configs.tasks import FitWeightsTaskConfig, ScoreTaskConfig
from vrexp.data.dpo_pairs import choose_pairs
from vrexp.data.items import ItemsError, dataset_items, folder_items
from vrexp.data.prompts import read_prompts
from vrexp.media import Clip
from vrexp.preference import select_pairs
from vrexp.resources import dimensions_dir
from vrexp.reward import LinearReward
from vrexp.reward.inputs import MediaInputError, to_model_media
from vrexp.reward.linear import RewardError
from vrexp.reward.scorer import load_linear_reward, load_reward_files, save_reward_files


def messages(err: BaseException) -> str:
    """The error and its causes, as the CLI prints them."""
    text = []
    while err is not None:
        text.append(str(err))
        err = err.__cause__
    return "\n".join(text)


def refusal(tmp_path: Path, *overrides: str) -> str:
    with pytest.raises(Exception) as err:
        validate_config(compose_config(tmp_path, *overrides))
    return messages(err.value)


ANNOTATE = ("task=annotate", "task.model_dir=/m")
FIT = ("task=fit_weights", "task.annotations=/a")
EVALUATE = ("task=evaluate", "task.annotations=/a", "task.reward_dir=/r")
SAMPLE = ("task=sample", "task.generator_dir=null", "task.reward_dir=/r", "generator=tiny_sd")
TRAIN_GENERATOR = ("task=train_generator", "generator=tiny_sd")
GENERATOR = {"name": "g", "family": "sd", "media": "image"}

# (overrides, what the message must say): the rows first, then the settings checked here.
BAD_SETTINGS = {
    "annotate batch_size=-4": ((*ANNOTATE, "task.batch_size=-4"), r"task\.batch_size=-4"),
    "annotate batch_size=0": ((*ANNOTATE, "task.batch_size=0"), r"task\.batch_size=0"),
    "annotate chunk_size=0": ((*ANNOTATE, "task.chunk_size=0"), r"task\.chunk_size=0"),
    "train_generator val_fraction=1.5": (
        (*TRAIN_GENERATOR, "task.val_fraction=1.5"),
        r"task\.val_fraction=1\.5",
    ),
    "partition val_fraction=1.5": (
        (*ANNOTATE, "dataset.partition.val_fraction=1.5"),
        r"dataset\.partition\.val_fraction=1\.5",
    ),
    "fit_weights l2=-5": ((*FIT, "task.l2=-5"), r"task\.l2=-5"),
    "dpo threshold=-1": ((*ANNOTATE, "dpo.threshold=-1"), r"dpo\.threshold=-1"),
    "questions.selection=best": (
        (*FIT, "task.questions.selection=best"),
        r"'best'.*\[random, top_weight\][\s\S]*task\.questions\.selection",
    ),
    "dpo.granularity=subdim": (
        (*ANNOTATE, "dpo.granularity=subdim"),
        r"'subdim'.*\[dimension, sub_dimension, question\][\s\S]*dpo\.granularity",
    ),
    "evaluate part=tset": (
        (*EVALUATE, "task.part=tset"),
        r"'tset'.*\[train, val, test\][\s\S]*task\.part",
    ),
    "backbone.family=qwen3": (
        (*ANNOTATE, "backbone.family=qwen3"),
        r"'qwen3'.*\[qwen2_vl, qwen2_5_vl, llava\][\s\S]*backbone\.family",
    ),
}


@pytest.mark.parametrize("case", list(BAD_SETTINGS))
def test_a_bad_setting_is_refused_before_work_naming_the_key(tmp_path, case):
    overrides, expected = BAD_SETTINGS[case]
    assert re.search(expected, refusal(tmp_path, *overrides))


# The settings checked since, on their schemas (what composition merges them into): (schema,
# values, what the message must say).
BAD_SCHEMA_VALUES = {
    "score chunk_size=0": (
        ScoreTaskConfig,
        {"official": "image", "chunk_size": 0},
        r"task\.chunk_size=0",
    ),
    "sample chunk_size=0": (
        SampleTaskConfig,
        {"generator_dir": None, "reward_dir": "r", "chunk_size": 0},
        r"task\.chunk_size=0",
    ),
    "sample guidance_scale=-1": (
        SampleTaskConfig,
        {"generator_dir": None, "reward_dir": "r", "guidance_scale": -1},
        r"task\.guidance_scale=-1",
    ),
    "sgd.batch_size=0": (
        FitWeightsTaskConfig,
        {"annotations": "a", "sgd": {"batch_size": 0}},
        r"task\.sgd\.batch_size=0",
    ),
    "tiny.num_heads=0": (TinyModelConfig, {"num_heads": 0}, r"backbone\.tiny\.num_heads=0"),
    "tiny.hidden_size=130": (
        TinyModelConfig,
        {"hidden_size": 130},
        r"backbone\.tiny\.hidden_size \(a multiple of num_heads\)=130",
    ),
    "tiny.num_kv_heads=8": (
        TinyModelConfig,
        {"num_kv_heads": 8},
        r"backbone\.tiny\.num_kv_heads=8",
    ),
    "backbone.lora.r=0": (LoraSettings, {"r": 0}, r"backbone\.lora\.r=0"),
    "backbone.lora.dropout=1.5": (LoraSettings, {"dropout": 1.5}, r"backbone\.lora\.dropout=1\.5"),
    "generator.tiny.layers_per_block=0": (
        TinyGeneratorConfig,
        {"layers_per_block": 0},
        r"generator\.tiny\.layers_per_block=0",
    ),
    "generator.tiny.block_out_channels=[]": (
        TinyGeneratorConfig,
        {"block_out_channels": []},
        r"generator\.tiny\.block_out_channels=\[\]",
    ),
    "generator.lora.r=0": (GeneratorLora, {"r": 0}, r"generator\.lora\.r=0"),
    "generator.guidance_scale=-1": (
        GeneratorConfig,
        {**GENERATOR, "guidance_scale": -1},
        r"generator\.guidance_scale=-1",
    ),
    "generator.num_frames=0": (
        GeneratorConfig,
        {**GENERATOR, "num_frames": 0},
        r"generator\.num_frames=0",
    ),
    "utility.weights={}": (UtilityConfig, {"weights": {}}, r"dataset\.utility\.weights=\{\}"),
}


@pytest.mark.parametrize("case", list(BAD_SCHEMA_VALUES))
def test_a_bad_schema_value_is_refused_naming_the_key(case):
    schema, values, expected = BAD_SCHEMA_VALUES[case]
    with pytest.raises(ConfigValueError, match=expected):
        OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), values))


def test_the_default_configs_still_validate(tmp_path):
    for overrides in (ANNOTATE, SAMPLE):
        validate_config(compose_config(tmp_path, *overrides))


def test_choices_outside_a_typed_config_name_the_key_and_the_values():
    """Values that reach code without composition (Python calls, files): one home, the enums."""
    with pytest.raises(ChoiceError, match=r"dpo\.granularity='subdim'.*sub_dimension"):
        choose_pairs(pa.table({}), OmegaConf.create({"granularity": "subdim", "rule": "mpo"}))
    assert Granularity.of("question", "dpo.granularity") is Granularity.question
    with pytest.raises(ValueError, match=r"dpo\.threshold=-1"):
        select_pairs(torch.zeros(2, 3, 4), "total", -1.0)


# ------------------------------------------------------------------ reward_config.json
@pytest.fixture
def reward_folder(tmp_path):
    checklist = Checklist.from_yaml(dimensions_dir() / "synthworld_image.yaml")
    features = sum(q.kind != "presence" for q in checklist.questions)
    save_reward_files(
        tmp_path / "reward", LinearReward(checklist, np.ones(features)), hard_answers=False
    )
    return tmp_path / "reward"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ({"hard_answers": "no"}, r"hard_answers='no' must be true or false"),
        ({"batch_size": -1}, r"batch_size=-1 must be an integer >= 1"),
        ({"batch_size": True}, r"batch_size=True must be an integer"),
        ({"hard_anwsers": False}, r"unknown key 'hard_anwsers'"),
        ([1, 2], r"must hold a JSON object"),
        ("{not json", r"cannot read"),
    ],
)
def test_a_bad_reward_config_is_refused_naming_the_file(reward_folder, content, expected):
    path = reward_folder / "reward_config.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(RewardError, match=expected) as err:
        load_reward_files(reward_folder)
    assert str(path) in str(err.value)


def test_a_good_reward_config_reads_as_written(reward_folder):
    path = reward_folder / "reward_config.json"
    path.write_text(json.dumps({"format_version": 1, "hard_answers": True, "batch_size": 4}))
    assert load_linear_reward(reward_folder)[1] is True
    assert load_reward_files(reward_folder)[1] == {"hard_answers": True, "batch_size": 4}


# ------------------------------------------------------------------ special tokens
@pytest.fixture(scope="module", params=["tiny_qwen2_vl", "tiny_llava"])
def backbone(request, tmp_path_factory, one_thread):
    cfg = compose_config(
        tmp_path_factory.mktemp("bb"),
        f"backbone={request.param}",
        "backbone.tiny.num_layers=1",
        "backbone.tiny.vision_layers=1",
        # The template's own special token stays a special token; the prompt's do not.
        "backbone.question_template='{question} Answer:</s>'",
    )
    return build_backbone(OmegaConf.to_object(cfg.backbone)).eval()


QUESTION = 'Does the image show "[[prompt]]"?'


def suffix_ids(backbone, prompt: str) -> list[int]:
    return backbone.encode_suffixes([backbone.question_text(fill_prompt(QUESTION, prompt))])[0]


def special_spellings(backbone) -> list[str]:
    tokenizer = backbone.tokenizer
    return sorted({t.content for t in tokenizer.added_tokens_decoder.values() if t.special})


def test_special_tokens_in_a_prompt_reach_the_model_as_text(backbone):
    tokenizer = backbone.tokenizer
    special = set(tokenizer.all_special_ids)
    eos = tokenizer.convert_tokens_to_ids("</s>")
    for spelling in special_spellings(backbone):
        ids = suffix_ids(backbone, f"a cat {spelling} on a mat")
        assert ids[-1] == eos  # the template's </s>
        assert not special & set(ids[:-1]), spelling
    # The real media tokens still come from the prefix the backbone writes itself.
    media_id = tokenizer.convert_tokens_to_ids(
        "<|image_pad|>" if backbone.family.startswith("qwen") else "<image>"
    )
    prefix = backbone.process([np.zeros((backbone.config.image_size,) * 2 + (3,), np.uint8)])
    assert media_id in prefix["input_ids"][0].tolist()


def test_a_prompt_without_special_tokens_tokenises_as_before(backbone):
    prompt = "two red circles on a sky background"
    text = backbone.config.question_template.format(question=fill_prompt(QUESTION, prompt))
    expected = backbone.tokenizer(text, add_special_tokens=False).input_ids
    assert suffix_ids(backbone, prompt) == expected


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_no_text_produces_a_special_token_id(backbone, data):
    pieces = st.one_of(st.text(max_size=6), st.sampled_from(special_spellings(backbone)))
    prompt = "x" + "".join(data.draw(st.lists(pieces, max_size=6)))
    ids = suffix_ids(backbone, prompt)
    assert not set(backbone.tokenizer.all_special_ids) & set(ids[:-1])


def test_a_generator_prompt_cannot_spell_its_tokenizer_s_special_tokens():
    from vrexp.generators.base import tiny_tokenizer, tokenize

    tokenizer = tiny_tokenizer(256, 16)
    ids = tokenize(tokenizer, ["a cat </s> <pad> <unk>"], torch.device("cpu"))[0].tolist()
    content = [i for i in ids if i != tokenizer.pad_token_id]
    assert not {tokenizer.eos_token_id, tokenizer.unk_token_id, tokenizer.pad_token_id} & set(
        content
    )


# ------------------------------------------------------------------ media paths
def media_folder(tmp_path: Path, media: str) -> Path:
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    (root / "prompts.csv").write_text(f"media,prompt\nin.png,a cat\n{media},a dog\n")
    return root


@pytest.mark.parametrize("media", ["../x.png", "/abs/path.png", "sub/../../x.png", "link.png"])
def test_a_media_path_leaving_the_root_is_refused_naming_the_line(tmp_path, media):
    root = media_folder(tmp_path, media)
    (tmp_path / "x.png").write_bytes(b"")
    if media == "link.png":
        (root / "link.png").symlink_to(tmp_path / "x.png")
    with pytest.raises(
        ItemsError, match=rf"prompts\.csv line 3: media '{re.escape(media)}' is outside"
    ):
        folder_items(root, "prompts.csv")
    items = folder_items(root, "prompts.csv", allow_outside_root=True)
    assert [i.prompt for i in items] == ["a cat", "a dog"]


def test_the_dataset_flag_lets_a_folder_read_outside_its_root(tmp_path):
    root = media_folder(tmp_path, "../x.png")
    for allow, ok in (("false", False), ("true", True)):
        cfg = compose_config(
            tmp_path,
            "dataset=media_folder",
            f"dataset.root={root}",
            f"dataset.allow_outside_root={allow}",
        )
        dataset = OmegaConf.to_object(cfg.dataset)
        if ok:
            assert len(dataset_items(dataset, None)) == 2
        else:
            with pytest.raises(ItemsError, match="allow_outside_root"):
                dataset_items(dataset, None)


def test_a_tampered_split_cannot_point_outside_itself(compose_cfg):
    from vrexp.data.items import split_items
    from vrexp.data.synthworld import make_split

    cfg = compose_cfg("dataset.num_prompts=2")
    dataset = OmegaConf.to_object(cfg.dataset)
    make_split(dataset, Checklist.from_config(cfg.dimensions))
    part = sorted(Path(dataset.out_dir, "items").glob("part-*.parquet"))[0]
    table = pq.read_table(part)
    paths = table.column("media_path").to_pylist()
    paths[1] = "../../x.png"
    index = table.schema.get_field_index("media_path")
    pq.write_table(table.set_column(index, "media_path", pa.array(paths)), part)
    item = table.column("item_id")[1].as_py()
    with pytest.raises(ItemsError, match=rf"item {item}: media .*x\.png is outside the split"):
        split_items(dataset.out_dir)


# ------------------------------------------------------------------ prompts files
@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "p.jsonl",
            '{"media": "a.png", "prompt": "x"}\n{"media": "b.png", "prompt": }\n',
            "line 2: not JSON",
        ),
        (
            "p.jsonl",
            '{"media": "a.png", "prompt": "x"}\n\n\n[1]\n',
            "line 4: expected a JSON object",
        ),
        (
            "p.jsonl",
            '{"media": "a.png", "prompt": "x"}\n{"media": "b.png"}\n',
            "line 2: 'prompt' must be text",
        ),
        ("p.csv", "media,prompt\n", "holds no rows"),
        ("p.csv", "", "holds no rows"),
        ("p.jsonl", "\n\n", "holds no rows"),
        ("p.csv", "media,text\na.png,x\n", r"no \['prompt'\] column"),
        ("p.csv", 'media,prompt\na.png,"two\nlines"\n,x\n', "line 4: 'media' must be a path"),
    ],
)
def test_a_bad_prompts_file_names_the_file_and_line(tmp_path, name, text, expected):
    (tmp_path / name).write_text(text)
    with pytest.raises(ItemsError, match=expected) as err:
        folder_items(tmp_path, name)
    assert name in str(err.value)


@pytest.mark.parametrize("name", ["p.csv", "p.txt", "p.jsonl", "p.parquet"])
def test_a_generator_prompts_file_without_prompts_is_refused(tmp_path, name):
    path = tmp_path / name
    if name == "p.parquet":
        pq.write_table(pa.table({"prompt": pa.array([], pa.string())}), path)
    else:
        path.write_text("prompt\n" if name == "p.csv" else "\n")
    with pytest.raises(ItemsError, match=r"holds no (rows|prompts)") as err:
        read_prompts(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("p.csv", "media,prompt\n1.png,123\n2.png,007\n"),
        ("p.jsonl", '{"media": "1.png", "prompt": 123}\n{"media": 2, "prompt": "007"}\n'),
    ],
)
def test_numeric_looking_prompts_are_text(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    items = folder_items(tmp_path, name)
    assert items[0].prompt == "123"
    assert items[1].prompt == "007"
    assert items[1].media_path == tmp_path / ("2.png" if name == "p.csv" else "2")


def test_numeric_prompts_read_as_text_in_every_prompts_format(tmp_path):
    (tmp_path / "p.txt").write_text("123\n4.50\n")
    (tmp_path / "p.csv").write_text("prompt\n123\n4.50\n")
    (tmp_path / "p.jsonl").write_text('{"prompt": 123}\n{"prompt": 4.50}\n')
    pq.write_table(pa.table({"prompt": [123, 4]}), tmp_path / "p.parquet")
    assert read_prompts(tmp_path / "p.txt") == ["123", "4.50"]
    assert read_prompts(tmp_path / "p.csv") == ["123", "4.50"]
    assert read_prompts(tmp_path / "p.jsonl") == ["123", "4.50"]
    assert read_prompts(tmp_path / "p.parquet") == ["123", "4"]


# ------------------------------------------------------------------ empty media
@pytest.mark.parametrize(
    "value",
    [
        np.zeros((0, 0, 3), np.uint8),
        np.zeros((0, 0), np.uint8),
        np.zeros((0, 64, 64, 3), np.uint8),
        np.zeros((64, 0, 3), np.float32),
        torch.zeros(3, 0, 0),
        np.zeros((0,), np.uint8),
        Clip(np.zeros((0, 8, 8, 3), np.uint8), np.zeros(0)),
    ],
    ids=["0x0", "0x0-gray", "0-frames", "0-wide", "tensor-0x0", "1-d", "empty-clip"],
)
def test_an_empty_array_is_an_error_naming_the_item(value):
    with pytest.raises(MediaInputError, match=r"media\[3\]"):
        to_model_media(value, FrameSampling(), index=3)


@pytest.mark.slow
def test_the_command_exits_non_zero_naming_the_key(tmp_path):
    """The issue's ``task.batch_size=-4`` ran with exit 0; the command now fails before work."""
    from tests.conftest import run_cli

    result = run_cli(
        f"paths.root_dir={tmp_path}",
        "task=annotate",
        "task.model_dir=/m",
        "task.batch_size=-4",
        "logger=csv",
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "task.batch_size=-4 is out of range" in result.stdout + result.stderr
    assert not (tmp_path / "artifacts").exists()
