"""Stage ``optimize_generator``: the generator side end to end, in one run.

reward (the scorer pipeline: checklist model + fitted weights) -> train_generator (the base) ->
sample (K scored candidates per prompt) -> build_pairs (the ``dpo`` variant) -> train_dpo ->
eval_generator (against the base). The reward, the base generator and the scored samples live in
``task.artifacts_dir`` and are reused when their configuration matches, so a sweep over ``dpo``
trains and samples once and differs only in the pairs and what DPO makes of them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from vrexp.reports.sweep import write_results
from vrexp.tasks.artifacts import ensure_artifact
from vrexp.tasks.build_pairs import build_pairs
from vrexp.tasks.eval_generator import eval_generator
from vrexp.tasks.pipeline import StageClock, pipeline, stage_view
from vrexp.tasks.sample import sample
from vrexp.tasks.train_dpo import train_dpo
from vrexp.tasks.train_generator import train_generator
from vrexp.tracking import stage_logger


def _generator_fingerprint(view: DictConfig) -> dict[str, Any]:
    task = OmegaConf.to_container(view.task, resolve=True)
    task.pop("save_dir", None)
    return {
        "train_generator": task,
        "generator": OmegaConf.to_container(view.generator, resolve=True, enum_to_str=True),
        "dataset": OmegaConf.to_container(view.dataset, resolve=True, enum_to_str=True),
        "seed": view.seed,
    }


def with_base(cfg: DictConfig, stage: str, key: str, base_dir: str) -> DictConfig:
    """The stage's view with its base-generator folder set to ``base_dir``."""
    view = stage_view(cfg, stage)
    view.task[key] = str(base_dir)
    return view


def _job_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    return list(HydraConfig.get().overrides.task)


def optimize_generator(cfg: DictConfig, logger: Any = None) -> dict[str, Any]:
    console = Console()
    timed = StageClock(console)
    timings = timed.seconds

    with stage_logger(cfg, logger) as logger:
        timed("reward", pipeline, stage_view(cfg, "reward"), logger)
        base_dir = cfg.task.base_dir
        if base_dir is None:
            view = stage_view(cfg, "train_generator")
            base_dir = view.task.save_dir
            timed(
                "train_generator",
                lambda: ensure_artifact(
                    view.task.save_dir,
                    _generator_fingerprint(view),
                    "training.json",
                    lambda: train_generator(view, logger),
                    what="base generator",
                ),
            )
        timed("sample", sample, with_base(cfg, "sample", "generator_dir", base_dir), logger)
        timed("build_pairs", build_pairs, stage_view(cfg, "build_pairs"), logger)
        if cfg.task.report != "pairs":
            view = with_base(cfg, "train_dpo", "generator_dir", base_dir)
            timed("train_dpo", train_dpo, view, logger)
        if cfg.task.report == "eval":
            view = with_base(cfg, "eval_generator", "base_dir", base_dir)
            timed("eval_generator", eval_generator, view, logger)
    out_dir = Path(cfg.paths.output_dir)
    rows = result_rows(cfg)
    write_results(out_dir, rows, _job_overrides())
    (out_dir / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")
    console.print("stage seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    return {"rows": rows, "timings": timings}


def result_rows(cfg: DictConfig) -> list[dict[str, Any]]:
    """The job's rows for a sweep table, as ``task.report`` asks."""
    stages = cfg.task.stages
    statistics = json.loads((Path(stages.build_pairs.out_dir) / "statistics.json").read_text())
    pairs = {
        "pairs": statistics["pairs"],
        "pairs_dominating": statistics["pairs_dominating"],
        "pairs_non_dominating": statistics["pairs_non_dominating"],
        "qualifying_pairs": statistics["qualifying_pairs"],
        "total_rule_pairs": statistics["total_rule"]["total_rule_pairs"],
        "total_rule_dominating": statistics["total_rule"]["dominating"],
        "total_rule_non_dominating": statistics["total_rule"]["non_dominating"],
        "oracle_agreement": statistics.get("oracle_agreement"),
    }
    if cfg.task.report == "pairs":
        return [{"generator": cfg.dpo.name, **pairs}]
    training = json.loads((Path(stages.train_dpo.save_dir) / "training.json").read_text())
    if cfg.task.report == "curve":
        return [{"generator": cfg.dpo.name, **point} for point in training["curve"]]
    evaluation = json.loads(
        (Path(stages.eval_generator.out_dir) / "eval_generator.json").read_text()
    )
    base = next(r for r in evaluation if r["generator"] == "base")
    tuned = next(r for r in evaluation if r["generator"] != "base")
    return [
        {**base, "generator": "original"},
        {**tuned, "generator": cfg.dpo.name, **pairs, "dpo_steps": training["steps"]},
    ]
