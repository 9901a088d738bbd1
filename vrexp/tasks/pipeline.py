"""Stage ``pipeline`` (the main job): make_data -> train_checklist -> annotate -> fit_weights ->
evaluate -> the data-efficiency curve, with one logger run for all stages.

Each stage runs with its own settings from ``task.stages.<stage>``; its folders are laid out by
:func:`layout` under ``task.artifacts_dir`` (the run folder unless a sweep shares one). A checklist
model already there that was trained with the same configuration is reused (a sweep over
weighting or evaluation settings trains once), and one trained with another configuration is an
error rather than a silent mix-up. Annotation resumes. The model is always trained and annotated
on the full checklist; ``dimensions.drop`` takes effect at weighting and evaluation, which is what
a dimension ablation measures. Stage results are passed on in memory.

The data-efficiency curve (``task.data_efficiency.budgets``; :mod:`vrexp.modules.data_efficiency`)
refits the weighting and retrains ``bt_head`` on each budget's pairs from the same annotations,
reusing the main evaluation at the main fit's budget; its budgets are checked with the weighting's.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.loggers import WandbLogger
from rich.table import Table

from vrexp.atomic import atomic_write
from vrexp.checklist import Checklist
from vrexp.configs.views import stage_view
from vrexp.data.artifacts import ensure_artifact, shared_folder
from vrexp.data.pairs import check_pair_budget, pair_parts
from vrexp.data.synthworld import preference_split
from vrexp.modules.data_efficiency import curve_table, data_efficiency_curve, resolve_budgets
from vrexp.ranks import is_rank_zero
from vrexp.reports import PlotSpec, write_table
from vrexp.tasks.annotate import annotate
from vrexp.tasks.evaluate import evaluate
from vrexp.tasks.fit_weights import fit_weights
from vrexp.tasks.train_checklist import train_checklist
from vrexp.tracking import log_table, stage_logger
from vrexp.tracking.clock import StageClock
from vrexp.tracking.console import render
from vrexp.tracking.loggers import next_stage

log = logging.getLogger(__name__)

FINGERPRINT = "pipeline_fingerprint.json"
REWARD_FINGERPRINT = "reward_fingerprint.json"  # in the reward folder: the settings of its fit


def layout(task: DictConfig, output_dir: str | Path) -> None:
    """Fill in the stages' folders under ``task.artifacts_dir`` (default: ``output_dir``): the
    checklist model, its annotations and the reward there, the evaluation in the run folder.
    Folders the user set are kept."""
    artifacts = Path(task.artifacts_dir or output_dir)
    stages = task.stages
    paths = {
        ("train_checklist", "save_dir"): artifacts / "checklist_model",
        ("annotate", "model_dir"): artifacts / "checklist_model",
        ("annotate", "out_dir"): artifacts / "annotations",
        ("fit_weights", "annotations"): artifacts / "annotations",
        ("fit_weights", "model_dir"): artifacts / "checklist_model",
        ("fit_weights", "out_dir"): artifacts / "reward",
        ("evaluate", "annotations"): artifacts / "annotations",
        ("evaluate", "reward_dir"): artifacts / "reward",
        ("evaluate", "out_dir"): Path(output_dir) / "evaluation",
    }
    with open_dict(task):
        task.artifacts_dir = str(artifacts)
        for (stage, key), path in paths.items():
            if OmegaConf.is_missing(stages[stage], key) or stages[stage][key] is None:
                stages[stage][key] = str(path)


def _fingerprint(view: DictConfig) -> dict[str, Any]:
    task = OmegaConf.to_container(view.task, resolve=True, enum_to_str=True)
    task.pop("save_dir", None)
    task.pop("overwrite", None)  # how a rerun treats checkpoints, not what is trained
    return json.loads(
        json.dumps(
            {
                "train_checklist": task,
                "dataset": OmegaConf.to_container(view.dataset, resolve=True, enum_to_str=True),
                "dimensions": OmegaConf.to_container(
                    view.dimensions, resolve=True, enum_to_str=True
                ),
                "backbone": OmegaConf.to_container(view.backbone, resolve=True, enum_to_str=True),
                "seed": view.seed,
            },
            sort_keys=True,
        )
    )


def ensure_checklist_model(view: DictConfig, logger: Any) -> bool:
    """Train unless ``save_dir`` holds a model of this exact configuration; True if trained."""
    return ensure_artifact(
        view.task.save_dir,
        _fingerprint(view),
        "checklist_accuracy.json",
        lambda: train_checklist(view, logger),
        what="checklist model",
        fingerprint_file=FINGERPRINT,
    )


def fit_reward(view: DictConfig, model_fingerprint: dict[str, Any], logger: Any) -> dict:
    """Fit the weights unless ``out_dir`` holds a reward sealed with this configuration; the fit's
    info either way. Called under the reward folder's lock: the jobs of a sweep that share the
    reward (a sweep over ``dpo``) fit it once, so none rewrites it while another job reads it;
    a job with other weighting settings refits it (a sweep over them takes turns)."""
    out_dir = Path(view.task.out_dir)
    seal, info_file = out_dir / REWARD_FINGERPRINT, out_dir / "fit_info.json"
    wanted = json.loads(
        json.dumps(
            {
                "fit_weights": OmegaConf.to_container(view.task, resolve=True, enum_to_str=True),
                "dimensions": OmegaConf.to_container(
                    view.dimensions, resolve=True, enum_to_str=True
                ),
                "checklist_model": model_fingerprint,  # what made the annotations
                "seed": view.seed,
            },
            sort_keys=True,
        )
    )
    if seal.is_file() and info_file.is_file() and json.loads(seal.read_text()) == wanted:
        log.info("reused the reward in %s", out_dir)
        return {**json.loads(info_file.read_text()), "out_dir": str(out_dir)}
    seal.unlink(missing_ok=True)  # the folder is about to change
    info = fit_weights(view, logger)
    payload = json.dumps(wanted, indent=2, sort_keys=True) + "\n"
    atomic_write(seal, lambda p: p.write_text(payload))
    return info


def check_budgets(cfg: DictConfig) -> Path:
    """Render the split and check the weighting's and the data-efficiency curve's pair budgets
    against it, before any training."""
    dataset = OmegaConf.to_object(cfg.dataset)
    split_dir = preference_split(dataset, Checklist.from_config(cfg.dimensions))
    num_pairs = cfg.task.stages.fit_weights.num_pairs
    budgets = list(cfg.task.data_efficiency.budgets)
    if num_pairs is not None or budgets:
        available = len(pair_parts(split_dir, dataset.partition)["train"])
        if num_pairs is not None:
            check_pair_budget(num_pairs, available, "task.stages.fit_weights.num_pairs")
        resolve_budgets(budgets, available)
    return split_dir


def data_efficiency(
    cfg: DictConfig, model: dict[str, Any], evaluation: dict[str, Any], logger: Any
) -> list[dict[str, Any]]:
    """The curve of VisionReward and bt_head over ``task.data_efficiency.budgets``, written to
    ``<evaluation>/data_efficiency.{md,csv,png}`` and logged."""
    out_dir = Path(cfg.task.stages.evaluate.out_dir)
    rows = data_efficiency_curve(
        stage_view(cfg, "fit_weights"),
        stage_view(cfg, "evaluate"),
        list(cfg.task.data_efficiency.budgets),
        folder=out_dir / "data_efficiency",
        main=evaluation,
        inputs=model,
        logger=logger,
    )
    title = f"Data efficiency on {cfg.dataset.name}: VisionReward and bt_head against train pairs"
    if is_rank_zero():
        plot = PlotSpec(kind="line", x="train_pairs", series="method", log_x=True)
        paths = write_table(rows, out_dir, "data_efficiency", title=title, plot=plot)
        if isinstance(logger, WandbLogger):
            logger.log_image(key="eval/data_efficiency_plot", images=[str(paths["png"])])
    columns = list(dict.fromkeys(k for r in rows for k in r))
    log_table(logger, "eval/data_efficiency", columns, [[r.get(c) for c in columns] for r in rows])
    log.info(render(curve_table(rows)))
    return rows


def pipeline(cfg: DictConfig, logger: Any = None) -> dict[str, Any]:
    layout(cfg.task, cfg.paths.output_dir)
    timed = StageClock()
    with stage_logger(cfg, logger) as logger:
        timed("make_data", check_budgets, cfg)
        trained = timed(
            "train_checklist",
            ensure_checklist_model,
            stage_view(cfg, "train_checklist", full_checklist=True),
            logger,
        )
        if not trained:
            log.info("reused the checklist model in %s", cfg.task.stages.train_checklist.save_dir)
        next_stage(logger)
        # Parallel jobs sharing artifacts_dir take turns: annotation resumes, so a job that waited
        # finds every part done; a reward refitted with other settings is held until evaluated.
        stages = cfg.task.stages
        with shared_folder(stages.annotate.out_dir, "annotations"):
            timed("annotate", annotate, stage_view(cfg, "annotate", full_checklist=True), logger)
        with shared_folder(stages.fit_weights.out_dir, "reward"):
            model = _fingerprint(stage_view(cfg, "train_checklist", full_checklist=True))
            view = stage_view(cfg, "fit_weights")
            fit_info = timed("fit_weights", fit_reward, view, model, logger)
            next_stage(logger)
            view = stage_view(cfg, "evaluate")
            result = timed("evaluate", evaluate, view, logger, fit_info=fit_info)
        curve = []
        if cfg.task.data_efficiency.budgets:
            next_stage(logger)
            curve = timed("data_efficiency", data_efficiency, cfg, model, result, logger)
        if logger is not None:
            logger.log_metrics({f"time/{k}": v for k, v in timed.seconds.items()})
    log.info(render(timings_table(timed.seconds)))
    (Path(cfg.paths.output_dir) / "timings.json").write_text(
        json.dumps(timed.seconds, indent=2) + "\n"
    )
    reward_dir = Path(cfg.task.stages.evaluate.reward_dir).resolve()
    log.info(
        "score your own media with this reward (it knows SynthWorld only): python run.py "
        "task=score task.reward_dir=%s task.media=FILE_OR_FOLDER task.prompt='...'",
        reward_dir,
    )
    return {**result, "fit": fit_info, "data_efficiency": curve, "timings": timed.seconds}


def timings_table(seconds: dict[str, float]) -> Table:
    table = Table(title="Pipeline stages")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    for name, value in seconds.items():
        table.add_row(name, f"{value:.1f}")
    table.add_row("total", f"{sum(seconds.values()):.1f}")
    return table
