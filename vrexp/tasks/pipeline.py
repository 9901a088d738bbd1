"""Stage ``pipeline`` (the main job): make_data -> train_checklist -> annotate -> fit_weights ->
evaluate, with one logger run for all stages.

Each stage runs with its own settings from ``task.stages.<stage>``. The checklist model and its
annotations live in ``task.artifacts_dir``; a model already there that was trained with the same
configuration is reused (a sweep over weighting or evaluation settings trains once), and one
trained with another configuration is an error rather than a silent mix-up. Annotation resumes.
The model is always trained and annotated on the full checklist; ``dimensions.drop`` takes effect
at weighting and evaluation, which is what a dimension ablation measures.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict
from rich.console import Console
from rich.table import Table

from vrexp.tasks.annotate import annotate
from vrexp.tasks.artifacts import ensure_artifact
from vrexp.tasks.evaluate import evaluate
from vrexp.tasks.fit_weights import fit_weights, require_synthworld
from vrexp.tasks.train_checklist import train_checklist
from vrexp.tracking import stage_logger

FINGERPRINT = "pipeline_fingerprint.json"


def stage_view(cfg: DictConfig, stage: str, *, full_checklist: bool = False) -> DictConfig:
    """``cfg`` as the stage's own task would see it: ``task`` is ``task.stages.<stage>``."""
    settings = OmegaConf.to_container(cfg.task.stages[stage], resolve=True)
    view = copy.deepcopy(cfg)
    with open_dict(view):
        view.task = settings
        if full_checklist:
            view.dimensions.drop = []
    return view


def _fingerprint(view: DictConfig) -> dict[str, Any]:
    task = OmegaConf.to_container(view.task, resolve=True)
    task.pop("save_dir", None)
    return json.loads(
        json.dumps(
            {
                "train_checklist": task,
                "dataset": OmegaConf.to_container(view.dataset, resolve=True, enum_to_str=True),
                "dimensions": OmegaConf.to_container(
                    view.dimensions, resolve=True, enum_to_str=True
                ),
                "backbone": OmegaConf.to_container(view.backbone, resolve=True),
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


class StageClock:
    """Runs a chain's stages under a rule with their names, recording each one's seconds."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str, fn: Any, *args: Any) -> Any:
        self.console.rule(f"[bold]{name}")
        start = time.perf_counter()
        out = fn(*args)
        self.seconds[name] = time.perf_counter() - start
        return out


def pipeline(cfg: DictConfig, logger: Any = None) -> dict[str, Any]:
    console = Console()
    timed = StageClock(console)
    timings = timed.seconds

    with stage_logger(cfg, logger) as logger:
        timed("make_data", require_synthworld, cfg)
        trained = timed(
            "train_checklist",
            ensure_checklist_model,
            stage_view(cfg, "train_checklist", full_checklist=True),
            logger,
        )
        if not trained:
            console.print(
                f"reused the checklist model in {cfg.task.stages.train_checklist.save_dir}"
            )
        timed("annotate", annotate, stage_view(cfg, "annotate", full_checklist=True), logger)
        timed("fit_weights", fit_weights, stage_view(cfg, "fit_weights"), logger)
        result = timed("evaluate", evaluate, stage_view(cfg, "evaluate"), logger)
        if logger is not None:
            logger.log_metrics({f"time/{k}": v for k, v in timings.items()})
    table = Table(title="Pipeline stages")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    for name, seconds in timings.items():
        table.add_row(name, f"{seconds:.1f}")
    table.add_row("total", f"{sum(timings.values()):.1f}")
    console.print(table)
    (Path(cfg.paths.output_dir) / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")
    return {**result, "timings": timings}
