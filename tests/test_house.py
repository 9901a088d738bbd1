"""What every run gets from the house: validation before work, step budgets, the task wrapper's
metric and failure marking, the logger's chained steps and the callbacks group."""

from __future__ import annotations

import json

import pytest
import torch
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

from tests.conftest import compose_config, run_cli
from vrexp.configs import ConfigValueError, PartitionConfig, validate_config
from vrexp.data.checklist_data import split_by_prompt
from vrexp.data.pairs import PairBudgetError
from vrexp.modules.trainer import build_trainer
from vrexp.tasks import prepare, run_task
from vrexp.tracking.offline import finished_offline_runs, read_offline_runs

TINY_SPLIT = ["dataset.num_prompts=30", "dataset.renders_per_prompt=3"]


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (["task=evaluate", "task.baselines=[bt_haed]"], "bt_haed"),
        (["dpo.granularity=subdim"], "subdim"),
        (["task=fit_weights", "task.questions.selection=best"], "best"),
        (["task=fit_weights", "task.encoding=ternary"], "ternary"),
        (["backbone.family=qwen3"], "qwen3"),
        (["generator.prediction_type=x0"], "x0"),
        (["task=evaluate", "task.part=tset"], "tset"),
        (["backbone.frames.select=every"], "every"),
        (["task=sample", "task.video_format=webm"], "webm"),
    ],
)
def test_a_bad_choice_fails_at_composition_naming_it(tmp_path, overrides, named):
    with pytest.raises((ConfigCompositionException, ValidationError)) as err:
        compose_config(tmp_path, *overrides, "task.annotations=a", "task.reward_dir=r")
    assert named in str(err.value) + str(err.value.__cause__)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["task=annotate", "task.model_dir=m", "task.batch_size=-4"], "task.batch_size"),
        (["task=annotate", "task.model_dir=m", "task.chunk_size=0"], "task.chunk_size"),
        (["task=fit_weights", "task.annotations=a", "task.l2=-5"], "task.l2"),
        (["dpo.threshold=-1"], "dpo.threshold"),
        (["dataset.partition.val_fraction=1.5"], "dataset.partition.val_fraction"),
        (["backbone.frames.select=fps"], "backbone.frames.fps"),
        (["task.stages.train_checklist.max_steps=0"], "task.max_steps"),
        (
            ["task=sample", "task.generator_dir=g", "task.reward_dir=r", "task.candidates=1"],
            "task.candidates",
        ),
    ],
)
def test_a_value_out_of_range_fails_before_work_naming_the_key(tmp_path, overrides, key):
    cfg = compose_config(tmp_path, *overrides)
    with pytest.raises(ConfigValueError, match=key.replace(".", r"\.")):
        prepare(cfg)
    assert not (tmp_path / "data").exists()  # nothing was rendered


def test_validation_runs_inside_chains(tmp_path):
    cfg = compose_config(tmp_path, "task=optimize_generator", "task.stages.sample.batch_size=0")
    with pytest.raises(ConfigValueError, match=r"task\.batch_size"):
        prepare(cfg)
    objects = validate_config(compose_config(tmp_path, "task=make_data"))
    assert type(objects["dataset"]).__name__ == "SynthWorldConfig"


@pytest.mark.slow  # the same check as at composition, through a subprocess
def test_the_cli_names_an_unknown_baseline(tmp_path):
    result = run_cli("task=evaluate", "task.baselines=[bt_haed]", f"paths.root_dir={tmp_path}")
    assert result.returncode != 0 and "bt_haed" in result.stderr
    assert "bt_head" in result.stderr  # the valid choices are listed


def test_sweeping_the_seed_keeps_the_test_set(tmp_path):
    parts = []
    for seed in (0, 7):
        cfg = compose_config(tmp_path, f"seed={seed}")
        partition = OmegaConf.to_object(cfg.dataset).partition
        parts.append(split_by_prompt([f"p{i}" for i in range(50)], partition)["test"].tolist())
    assert parts[0] == parts[1]
    other = split_by_prompt([f"p{i}" for i in range(50)], PartitionConfig(seed=1))["test"]
    assert other.tolist() != parts[0]  # the partition's own seed does move it


def test_a_pair_budget_larger_than_the_split_fails_before_training(tmp_path):
    cfg = compose_config(tmp_path, *TINY_SPLIT, "task.stages.fit_weights.num_pairs=100000")
    with pytest.raises(PairBudgetError, match=r"task\.stages\.fit_weights\.num_pairs=100000"):
        run_task(cfg)
    assert not (tmp_path / "out" / "checklist_model").exists()


def test_a_missing_local_model_folder_is_named(tmp_path):
    from vrexp.backbones import build_backbone

    missing = tmp_path / "no_such_model"
    cfg = compose_config(tmp_path, "backbone=qwen2_vl_2b", f"backbone.name_or_path={missing}")
    with pytest.raises(ConfigValueError, match="that folder does not exist") as err:
        build_backbone(OmegaConf.to_object(cfg.backbone))
    assert str(missing) in str(err.value) and "download" not in str(err.value)


def test_budgets_are_steps_and_epochs_not_wall_time(tmp_path):
    cfg = compose_config(tmp_path)
    assert cfg.task.stages.train_checklist.max_time is None
    assert cfg.task.stages.evaluate.baseline.max_time is None
    task = OmegaConf.to_object(cfg.task.stages.train_checklist)
    trainer = build_trainer(cfg, task, None, enable_progress_bar=False)
    assert trainer.max_epochs == 16 and trainer.max_steps == -1
    assert not any(type(c).__name__ == "Timer" for c in trainer.callbacks)  # no wall clock
    video = compose_config(tmp_path, "dataset=synthworld_video")
    video_task = OmegaConf.to_object(video.task.stages.train_checklist)
    assert (video_task.max_epochs, video_task.batch_size) == (30, 16)
    assert task.batch_size == 32


def test_callbacks_come_from_the_callbacks_group(tmp_path):
    from pytorch_lightning.callbacks import LearningRateMonitor
    from pytorch_lightning.loggers import CSVLogger

    cfg = compose_config(tmp_path)
    task = OmegaConf.to_object(cfg.task.stages.train_checklist)
    logger = CSVLogger(tmp_path)
    with_lr = build_trainer(cfg, task, logger, enable_progress_bar=False)
    assert any(isinstance(c, LearningRateMonitor) for c in with_lr.callbacks)
    no_logger = build_trainer(cfg, task, None, enable_progress_bar=False)
    assert not any(isinstance(c, LearningRateMonitor) for c in no_logger.callbacks)
    bare = build_trainer(compose_config(tmp_path, "callbacks=none"), task, logger)
    assert not any(isinstance(c, LearningRateMonitor) for c in bare.callbacks)


def test_chained_stages_log_after_each_other(tmp_path):
    from vrexp.tracking.loggers import QuietWandbLogger, next_stage

    logger = QuietWandbLogger(save_dir=str(tmp_path), offline=True, project="t")
    for step in range(3):
        logger.log_metrics({"a": float(step)}, step=step)
    next_stage(logger)
    logger.log_metrics({"b": 1.0}, step=0)
    assert logger.last_step == 3
    logger.experiment.finish()
    (run,) = finished_offline_runs(tmp_path)
    steps = [row["trainer/global_step"] for row in run.history if "trainer/global_step" in row]
    assert steps == [0, 1, 2, 3]


@pytest.mark.slow
def test_a_failing_job_is_recorded_as_failed(tmp_path):
    result = run_cli(
        "task=fit_weights",
        f"task.annotations={tmp_path}/none",
        f"paths.root_dir={tmp_path}",
        *TINY_SPLIT,
    )
    assert result.returncode != 0 and "has no annotation parts" in result.stderr
    (run,) = read_offline_runs(tmp_path / "logs")
    assert run.exit_code == 1
    (log,) = (tmp_path / "logs" / "fit_weights" / "runs").glob("*/run.log")
    assert "task fit_weights failed" in log.read_text()


@pytest.mark.slow  # a CLI run
def test_run_log_holds_what_the_run_printed(tmp_path):
    result = run_cli(
        "task=make_data", f"paths.root_dir={tmp_path}", "dataset.num_prompts=4", "logger=none"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (log,) = (tmp_path / "logs" / "make_data" / "runs").glob("*/run.log")
    text = log.read_text()
    assert "tie fraction" in text and "Pixel-oracle agreement" in text
    assert "outputs of make_data:" in result.stdout + result.stderr


def test_run_task_returns_the_metric_for_a_sweeper(tmp_path):
    cfg = compose_config(tmp_path, "task=make_data", "dataset.num_prompts=4", "logger=none")
    assert run_task(cfg) is None  # make_data has no metric
    from vrexp.tasks import METRICS

    assert METRICS["pipeline"]({"rows": [{"tau_star": 0.7}]}) == 0.7
    assert json.loads(json.dumps(sorted(METRICS)))  # every metric is named by its task


@pytest.mark.slow
def test_the_main_job_is_bitwise_reproducible_on_cpu(tmp_path):
    """The same command and seed give the same checklist model and the same table: budgets are
    steps and epochs, not time, and torch's CPU threads are the config's, not the machine's (the
    whole chain at debug=smoke, twice, from processes with 2 and 1 threads)."""
    from safetensors.torch import load_file

    runs, threads = [], torch.get_num_threads()
    for run, machine_threads in (("a", 2), ("b", 1)):
        cfg = compose_config(tmp_path / run, "debug=smoke", "logger=none")
        torch.set_num_threads(machine_threads)
        try:
            metric = run_task(cfg)
        finally:
            torch.set_num_threads(threads)
        out = tmp_path / run / "out"
        weights = load_file(out / "checklist_model" / "model.safetensors")
        runs.append(
            (
                metric,
                json.loads((out / "checklist_model" / "checklist_accuracy.json").read_text()),
                json.loads((out / "results.json").read_text())["rows"],
                {k: v.tolist() for k, v in weights.items()},
            )
        )
    assert runs[0] == runs[1]
    assert runs[0][0] == runs[0][2][0]["tau_star"]  # the metric a sweeper gets


def test_a_task_runs_on_the_configured_cpu_threads(tmp_path):
    threads = torch.get_num_threads()
    try:
        for setting, expected in (("1", 1), ("null", 2)):
            torch.set_num_threads(2)
            cfg = compose_config(
                tmp_path / setting,
                "task=make_data",
                "dataset.num_prompts=4",
                "logger=none",
                f"cpu_threads={setting}",
            )
            run_task(cfg)
            assert torch.get_num_threads() == expected
    finally:
        torch.set_num_threads(threads)
    assert compose_config(tmp_path, "task=make_data").cpu_threads == 1  # the default
    with pytest.raises(ConfigValueError, match=r"cpu_threads=0"):
        validate_config(compose_config(tmp_path, "cpu_threads=0"))


def test_stage_views_keep_their_schema_at_every_depth(tmp_path):
    from vrexp.configs.tasks import PipelineTaskConfig, TrainChecklistTaskConfig
    from vrexp.configs.views import stage_view

    cfg = compose_config(tmp_path, "task=optimize_generator")
    prepare(cfg)
    reward = stage_view(cfg, "reward")
    assert OmegaConf.get_type(reward.task) is PipelineTaskConfig
    inner = stage_view(reward, "train_checklist", full_checklist=True)
    assert isinstance(OmegaConf.to_object(inner.task), TrainChecklistTaskConfig)
    assert inner.dimensions.drop == [] and cfg.task.name == "optimize_generator"
