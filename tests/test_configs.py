"""Every option of every config group composes and instantiates; bad input names the key."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import pytorch_lightning as pl
from hydra.errors import ConfigCompositionException, InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

from tests.conftest import CONF, EXPERIMENTS, run_cli
from vrexp.backbones import BackboneError, build_backbone
from vrexp.backbones.families import QwenVLBackbone
from vrexp.checklist import Checklist
from vrexp.configs import (
    BenchmarkDatasetConfig,
    DPOConfig,
    MediaFolderConfig,
    SynthWorldConfig,
    VisionRewardDBConfig,
    check_known_keys,
)
from vrexp.configs.choices import BenchmarkName, VisionRewardDBName
from vrexp.generators import GeneratorError, build_generator
from vrexp.modules.trainer import trainer_arguments
from vrexp.tasks import prepare

GROUPS = {
    group.name: sorted(p.stem for p in group.glob("*.yaml"))
    for group in CONF.iterdir()
    if group.is_dir() and group.name not in {"hydra", "official"}
}
GROUPS["experiment"] = sorted(p.stem for p in EXPERIMENTS.glob("*.yaml"))  # experiments/


def test_the_config_groups_of_this_issue_exist():
    assert {
        "paths",
        "logger",
        "trainer",
        "dimensions",
        "dataset",
        "task",
        "backbone",
        "generator",
        "dpo",
        "hparams_search",
    } <= set(GROUPS)
    assert set(GROUPS["hparams_search"]) == {"checklist_optuna", "dpo_optuna"}
    assert {"tiny_sd", "tiny_video", "sdxl", "cogvideox_2b"} <= set(GROUPS["generator"])
    assert {"total", "mpo", "mpo_subdimension", "mpo_question"} <= set(GROUPS["dpo"])
    assert {"tiny_qwen2_vl", "tiny_llava", "qwen2_vl_2b", "qwen2_5_vl_7b", "llava_1_5_7b"} <= set(
        GROUPS["backbone"]
    )
    assert set(GROUPS["logger"]) == {"wandb", "csv", "none"}
    assert set(GROUPS["trainer"]) == {"cpu", "gpu", "ddp", "ddp_cpu", "fsdp"}
    assert {
        "synthworld_image",
        "synthworld_video",
        "visionreward_image",
        "visionreward_image_select",
        "visionreward_video",
        "visionreward_video_select",
    } <= set(GROUPS["dimensions"])


@pytest.mark.parametrize(
    ("group", "option"), [(g, o) for g, options in GROUPS.items() for o in options]
)
def test_every_option_composes_and_instantiates(group, option, compose_cfg, tmp_path):
    required = {  # options with a mandatory value (???) get one here
        ("dataset", "media_folder"): [f"dataset.root={tmp_path}"],
        **{("dataset", name.value): [f"dataset.root={tmp_path}"] for name in BenchmarkName},
        **{("dataset", n.value): [f"dataset.root={tmp_path}"] for n in VisionRewardDBName},
        ("task", "annotate"): [f"task.model_dir={tmp_path}/model"],
        ("task", "fit_weights"): [f"task.annotations={tmp_path}/annotations"],
        ("task", "evaluate"): [
            f"task.annotations={tmp_path}/annotations",
            f"task.reward_dir={tmp_path}/reward",
        ],
        ("task", "sample"): [
            f"task.generator_dir={tmp_path}/generator",
            f"task.reward_dir={tmp_path}/reward",
        ],
        ("task", "build_pairs"): [f"task.samples={tmp_path}/samples"],
        ("task", "score"): [f"task.reward_dir={tmp_path}/reward"],
        ("task", "benchmark"): [f"task.scores={tmp_path}/scores.csv"],
        ("task", "train_dpo"): [
            f"task.generator_dir={tmp_path}/generator",
            f"task.pairs={tmp_path}/pairs",
        ],
        ("task", "eval_generator"): [
            f"task.base_dir={tmp_path}/generator",
            f"task.reward_dir={tmp_path}/reward",
        ],
    }
    cfg = compose_cfg(f"{group}={option}", *required.get((group, option), []))
    node = cfg.get(group)
    if group == "dimensions":
        checklist = Checklist.from_config(node)
        assert checklist.name == option and checklist.questions
    elif group == "dataset":
        expected = (
            MediaFolderConfig
            if option == "media_folder"
            else BenchmarkDatasetConfig
            if option in BenchmarkName.values()
            else VisionRewardDBConfig
            if option in VisionRewardDBName.values()
            else SynthWorldConfig
        )
        assert isinstance(OmegaConf.to_object(node), expected)
    elif group == "task":
        task = prepare(cfg)["task"]  # lays out a chain's folders, then validates every group
        assert (
            type(task).__name__.lower().startswith(option.replace("_", "")) and task.name == option
        )
    elif group == "backbone":
        spec = OmegaConf.to_object(node)
        if spec.name_or_path is None:
            backbone = build_backbone(spec)
            assert backbone.family == spec.family and backbone.yes_ids != backbone.no_ids
        else:  # real sizes: offline and absent, they fail at once and say how to provide weights
            with pytest.raises(BackboneError, match="not on this machine"):
                build_backbone(spec)
    elif group == "logger":
        if option == "none":
            assert node is None
        else:
            logger = instantiate(node)
            assert isinstance(logger, pl.loggers.Logger)
            assert Path(logger.save_dir) == tmp_path / "out"
    elif group == "trainer":
        # No GPU here: instantiate the same settings on CPU to prove every key is a Trainer argument.
        overrides = (
            {}
            if option in ("cpu", "ddp_cpu")
            else {"accelerator": "cpu", "devices": 2 if option in ("ddp", "fsdp") else 1}
        )
        arguments = trainer_arguments(node, shard_layers=QwenVLBackbone.shard_layers)
        if option == "fsdp":  # Lightning's FSDP needs a GPU (docs/distributed.md §4)
            assert type(arguments["strategy"]).__name__ == "FSDPStrategy"
            with pytest.raises(InstantiationException, match="requires a GPU accelerator"):
                instantiate(arguments, **overrides, logger=False)
            return
        trainer = instantiate(arguments, **overrides, logger=False)
        assert isinstance(trainer, pl.Trainer)
        if option in ("ddp", "ddp_cpu"):
            assert type(trainer.strategy).__name__ == "DDPStrategy"
            assert trainer.num_devices == 2
    elif group == "generator":
        spec = OmegaConf.to_object(node)
        if spec.name_or_path is None:
            generator = build_generator(spec)
            assert generator.family == spec.family and generator.config.media == spec.media
        else:  # real sizes: offline and absent, they fail at once and say how to provide weights
            with pytest.raises(GeneratorError, match="not on this machine"):
                build_generator(spec)
    elif group == "dpo":
        dpo = OmegaConf.to_object(node)
        assert isinstance(dpo, DPOConfig) and dpo.name == option
        assert (dpo.rule == "total") == (option == "total")
    elif group == "experiment":
        if option == "table2_real":  # benchmark jobs (its sweep picks each job's benchmark)
            assert cfg.task.name == "benchmark"
            job = compose_cfg(f"{group}={option}", "dataset=hpdv2_test")
            root = OmegaConf.to_container(job.dataset, resolve=True)["root"]
            assert root == f"{tmp_path}/datasets/HPDv2"
        elif option == "main_seeds":  # the seed changes every artifact: each job keeps its own
            assert cfg.task.name == "pipeline" and cfg.task.artifacts_dir is None
        else:  # a sweep whose jobs share one artifacts folder per split
            assert cfg.task.name in ("pipeline", "optimize_generator")
            artifacts = OmegaConf.to_container(cfg.task, resolve=True)["artifacts_dir"]
            assert artifacts.startswith(f"{tmp_path}/artifacts/{cfg.dataset.name}/")
    elif group == "callbacks":
        from vrexp.modules.trainer import checkpoint_callback, stage_callbacks

        assert checkpoint_callback(cfg, tmp_path).monitor == "val/acc"
        names = {type(c).__name__ for c in stage_callbacks(cfg, logger=object())}
        assert names == ({"LearningRateMonitor"} if option == "default" else set())
    elif group == "debug":
        smoke = option == "smoke"
        assert (cfg.dataset.num_prompts < 100) == smoke, "debug=smoke shrinks the split"
        assert (cfg.task.stages.train_checklist.max_steps != -1) == smoke
    elif group == "hparams_search":
        # An Optuna search (its sweeper settings: tests/distributed/test_sweeps.py) picks a task
        # that returns a metric for the sweeper.
        from vrexp.tasks import METRICS

        assert prepare(cfg)["task"].name in METRICS
    elif group == "paths":
        assert OmegaConf.to_container(node, resolve=True)["data_dir"] == f"{tmp_path}/data"
    else:  # a new group must be added to this test
        pytest.fail(f"no instantiation check for group {group!r}")


@pytest.mark.parametrize("dataset", GROUPS["dataset"])
def test_debug_smoke_composes_with_every_dataset(dataset, compose_cfg, tmp_path):
    # SynthWorld's smoke sizes belong to SynthWorld (conf/debug/datasets/smoke/): a real dataset
    # keeps its own keys, and each option still builds its config object.
    root = [] if dataset.startswith("synthworld") else [f"dataset.root={tmp_path}"]
    cfg = compose_cfg(f"dataset={dataset}", *root, "debug=smoke")
    node = OmegaConf.to_object(cfg.dataset)
    assert (getattr(node, "num_prompts", None) == 40) == dataset.startswith("synthworld")
    assert cfg.task.stages.train_checklist.max_steps != -1


def test_datasets_bring_their_own_checklist_unless_overridden(compose_cfg):
    assert compose_cfg("dataset=synthworld_video").dimensions.name == "synthworld_video"
    assert compose_cfg().dimensions.name == "synthworld_image"
    cfg = compose_cfg("dataset=synthworld_video", "dimensions=visionreward_video")
    assert cfg.dimensions.name == "visionreward_video"


@pytest.mark.parametrize(
    ("overrides", "temporal_patch_size", "lr"),
    [
        ((), 2, 1e-3),
        (("dataset=synthworld_video",), 8, 3e-4),
        (("dataset=media_folder", "dataset.root=x", "dataset.media=video"), 8, 3e-4),
        (
            ("dataset=synthworld_video", "task.lr=0.01", "backbone.tiny.temporal_patch_size=4"),
            4,
            0.01,
        ),
    ],
)
def test_the_tiny_recipe_follows_the_datasets_media(
    overrides, temporal_patch_size, lr, compose_cfg
):
    cfg = compose_cfg("task=train_checklist", *overrides)
    backbone = OmegaConf.to_object(cfg.backbone)
    assert backbone.tiny.temporal_patch_size == temporal_patch_size
    assert cfg.task.lr == pytest.approx(lr)
    if "task.lr=0.01" not in overrides:  # the main job's checklist stage follows it too
        assert compose_cfg(*overrides).task.stages.train_checklist.lr == pytest.approx(lr)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("dataset.num_itemz=3", "num_itemz"),
        ("dataset.num_prompts=many", "num_prompts"),
        ("dataset.media=audio", "media"),
        ("logger.offline=maybe", "offline"),
    ],
)
def test_bad_keys_and_types_fail_at_composition_naming_the_key(override, message, compose_cfg):
    with pytest.raises((ConfigCompositionException, ValidationError)) as err:
        compose_cfg(override)
    assert message in str(err.value) + str(err.value.__cause__)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("+dataset.num_itemz=3", "dataset.num_itemz"),
        (
            "+dimensions.hierarchy.0.sub_dimensions.0.optionz=[a]",
            "dimensions.hierarchy.0.sub_dimensions.0.optionz",
        ),
        ("+logger.projekt=x", "logger.projekt"),
    ],
)
def test_keys_added_with_plus_are_still_checked(override, key, compose_cfg):
    with pytest.raises(ValueError, match=f"unknown config key '{re.escape(key)}'"):
        check_known_keys(compose_cfg(override))


@pytest.mark.parametrize("group", sorted(GROUPS))  # one case per group: xdist spreads them
def test_every_option_of_a_group_has_only_known_keys(group, compose_cfg):
    for option in GROUPS[group]:
        check_known_keys(compose_cfg(f"{group}={option}"))


def test_a_key_no_schema_knows_is_named(compose_cfg):
    with pytest.raises(ValueError, match=r"backbone\.tiny\.hiden_size"):
        check_known_keys(compose_cfg("+backbone.tiny.hiden_size=3"))


def test_out_of_range_values_fail_naming_the_key(compose_cfg):
    with pytest.raises(ValueError, match=r"dataset\.tie_fraction"):
        OmegaConf.to_object(compose_cfg("dataset.tie_fraction=1.5").dataset)


@pytest.mark.slow  # two CLI runs; in-process twins: test_bad_keys_*
@pytest.mark.heavy  # CI's budget; test_validation's CLI case checks the exit and the named key
def test_cli_rejects_a_misspelt_key_with_its_name(tmp_path):
    result = run_cli("dataset.num_itemz=3", f"paths.root_dir={tmp_path}")
    assert result.returncode != 0
    assert "num_itemz" in result.stderr
    result = run_cli("dataset.num_prompts=abc", f"paths.root_dir={tmp_path}")
    assert result.returncode != 0
    assert "num_prompts" in result.stderr and "abc" in result.stderr


@pytest.mark.parametrize(
    ("overrides", "swaps"),
    [
        ((), 2),
        (("dataset=synthworld_video",), 2),
        (("dataset=visionrewarddb_image",), 0),  # no oracle to label another prompt
        (("dataset=media_folder", "dataset.root=x"), 0),
        (("task.prompt_swaps=5",), 5),
    ],
)
def test_counterfactual_prompts_are_on_where_an_oracle_labels_them(overrides, swaps, compose_cfg):
    cfg = compose_cfg("task=train_checklist", *overrides)
    assert OmegaConf.to_object(cfg.task).prompt_swaps == swaps
    if not overrides or "synthworld" in overrides[0]:  # the main job's stage follows it too
        assert compose_cfg(*overrides).task.stages.train_checklist.prompt_swaps == swaps


@pytest.mark.parametrize(
    ("overrides", "asked"),
    [
        ((), True),
        (("dataset=synthworld_video",), True),
        (("dataset=visionrewarddb_image",), False),  # no oracle colour to ask about
        (("dataset=synthworld_video", "task.colour_questions=false"), False),
    ],
)
def test_colour_questions_are_on_for_synthworld(overrides, asked, compose_cfg):
    cfg = compose_cfg("task=train_checklist", *overrides)
    assert OmegaConf.to_object(cfg.task).colour_questions is asked
    if len(overrides) < 2:  # the main job's stage follows the dataset too
        assert compose_cfg(*overrides).task.stages.train_checklist.colour_questions is asked


@pytest.mark.parametrize("kind", ["run", "sweep"])
def test_runs_started_in_the_same_second_get_folders_of_their_own(kind):
    # Two sweeps launched together (an image and a video study from one script) shared a folder
    # and overwrote each other's jobs when the folder was named to the second.
    folders = OmegaConf.to_container(OmegaConf.load(CONF / "hydra" / "default.yaml"))
    (pattern,) = re.findall(r"\$\{now:([^}]*)\}", folders[kind]["dir"])
    first = datetime(2026, 12, 4, 1, 3, 58, 120_000)
    second = first + timedelta(microseconds=1)
    assert first.strftime(pattern) != second.strftime(pattern)
    # and the names still sort in time order, as `ls -d logs/TASK/runs/* | tail -1` relies on
    later = [first + timedelta(microseconds=m) for m in (9, 10, 999_999, 1_000_000)]
    names = [t.strftime(pattern) for t in [first, *later]]
    assert names == sorted(names)
