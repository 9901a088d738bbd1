"""Stage ``optimize_generator``: the generator side end to end, in one run.

reward (the scorer pipeline: checklist model + fitted weights) -> train_generator (the base) ->
sample (K scored candidates per prompt) -> build_pairs (the ``dpo`` variant) -> train_dpo ->
eval_generator (against the base). :func:`layout` puts the reward, the base generator and the
scored samples in ``task.artifacts_dir``, where they are reused when their configuration matches,
so a sweep over ``dpo`` trains and samples once and differs only in the pairs and what DPO makes
of them; the samples folder is keyed by the sample stage's settings (:func:`samples_folder`), so
a sweep over K (``task.stages.sample.candidates``) samples once per K. Stage results are passed on
in memory.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from vrexp.configs.choices import GeneratorReport
from vrexp.configs.views import stage_view
from vrexp.data.artifacts import ensure_artifact, shared_folder
from vrexp.data.digests import config_digest
from vrexp.reports.sweep import job_overrides, write_results
from vrexp.tasks.build_pairs import build_pairs
from vrexp.tasks.eval_generator import eval_generator
from vrexp.tasks.pipeline import layout as reward_layout
from vrexp.tasks.pipeline import pipeline
from vrexp.tasks.sample import sample
from vrexp.tasks.train_dpo import train_dpo
from vrexp.tasks.train_generator import train_generator
from vrexp.tracking import stage_logger
from vrexp.tracking.clock import StageClock
from vrexp.tracking.loggers import next_stage

log = logging.getLogger(__name__)

# The sample stage's keys that say where or how, not what, it samples: the rest (K, prompts,
# noise seed, parts, sampler settings, video format) key the shared samples folder. A key left
# out of this list only costs a folder of its own; one wrongly in it would make two sweeps'
# jobs share a folder, and the second would be refused.
SAMPLE_PLACEMENT = (
    "name",
    "generator_dir",
    "reward_dir",
    "out_dir",
    "shard",
    "overwrite",
    "batch_size",
)


def samples_folder(sample: DictConfig) -> str:
    """The shared samples folder's name for these sample settings: ``k<K>-<digest>``, the digest
    of every setting but :data:`SAMPLE_PLACEMENT`'s (a samples folder refuses a resume with other
    settings, so one folder per setting)."""
    settings = OmegaConf.to_container(sample, resolve=True, enum_to_str=True)
    shaping = {k: v for k, v in settings.items() if k not in SAMPLE_PLACEMENT}
    return f"k{settings['candidates']}-{config_digest(shaping)['sha256'][:12]}"


def layout(cfg: DictConfig) -> None:
    """Fill in every stage's folders from ``task.artifacts_dir`` and the run folder."""
    task, output_dir = cfg.task, Path(cfg.paths.output_dir)
    artifacts = Path(task.artifacts_dir)
    stages = task.stages
    generator = cfg.generator.name
    with open_dict(task):
        task.artifacts_dir = str(artifacts)
        if stages.reward.artifacts_dir is None:
            stages.reward.artifacts_dir = str(artifacts)
        reward_layout(stages.reward, output_dir)
        reward_dir = stages.reward.stages.fit_weights.out_dir
        base = task.base_dir or str(artifacts / "generators" / generator)
        paths = {
            ("train_generator", "save_dir"): base,
            ("sample", "generator_dir"): base,
            ("sample", "reward_dir"): reward_dir,
            ("sample", "out_dir"): str(
                artifacts / "samples" / generator / samples_folder(stages.sample)
            ),
            ("build_pairs", "out_dir"): str(output_dir / "pairs"),
            ("train_dpo", "generator_dir"): base,
            ("train_dpo", "reward_dir"): reward_dir,
            ("train_dpo", "save_dir"): str(output_dir / "generator"),
            ("eval_generator", "base_dir"): base,
            ("eval_generator", "reward_dir"): reward_dir,
        }
        for (stage, key), path in paths.items():
            if OmegaConf.is_missing(stages[stage], key) or stages[stage][key] is None:
                stages[stage][key] = path
        if OmegaConf.is_missing(stages.build_pairs, "samples"):
            stages.build_pairs.samples = stages.sample.out_dir
        if OmegaConf.is_missing(stages.train_dpo, "pairs"):
            stages.train_dpo.pairs = stages.build_pairs.out_dir
        if not stages.eval_generator.generator_dirs:
            stages.eval_generator.generator_dirs = {"tuned": stages.train_dpo.save_dir}


def _generator_fingerprint(view: DictConfig) -> dict[str, Any]:
    task = OmegaConf.to_container(view.task, resolve=True, enum_to_str=True)
    task.pop("save_dir", None)
    task.pop("overwrite", None)  # how a rerun treats checkpoints, not what is trained
    return {
        "train_generator": task,
        "generator": OmegaConf.to_container(view.generator, resolve=True, enum_to_str=True),
        "dataset": OmegaConf.to_container(view.dataset, resolve=True, enum_to_str=True),
        "seed": view.seed,
    }


def optimize_generator(cfg: DictConfig, logger: Any = None) -> dict[str, Any]:
    layout(cfg)
    report = GeneratorReport(cfg.task.report)
    timed = StageClock()
    results: dict[str, Any] = {}
    with stage_logger(cfg, logger) as logger:
        timed("reward", pipeline, stage_view(cfg, "reward"), logger)
        next_stage(logger)
        if cfg.task.base_dir is None:
            view = stage_view(cfg, "train_generator")
            trained = timed(
                "train_generator",
                ensure_artifact,
                view.task.save_dir,
                _generator_fingerprint(view),
                "training.json",
                lambda: train_generator(view, logger),
                what="base generator",
            )
            if not trained:
                log.info("reused the base generator in %s", view.task.save_dir)
            next_stage(logger)
        with shared_folder(cfg.task.stages.sample.out_dir, "scored samples"):  # resumes
            timed("sample", sample, stage_view(cfg, "sample"), logger)
        results["pairs"] = timed("build_pairs", build_pairs, stage_view(cfg, "build_pairs"), logger)
        if report != GeneratorReport.pairs:
            results["train_dpo"] = timed(
                "train_dpo", train_dpo, stage_view(cfg, "train_dpo"), logger
            )
            next_stage(logger)
        if report == GeneratorReport.eval:
            view = stage_view(cfg, "eval_generator")
            results["eval"] = timed("eval_generator", eval_generator, view, logger)
    out_dir = Path(cfg.paths.output_dir)
    rows = result_rows(cfg.dpo.name, report, results)
    write_results(out_dir, rows, job_overrides())
    (out_dir / "timings.json").write_text(json.dumps(timed.seconds, indent=2) + "\n")
    log.info("stage seconds: %s", ", ".join(f"{k} {v:.0f}" for k, v in timed.seconds.items()))
    return {"rows": rows, "timings": timed.seconds}


def result_rows(dpo: str, report: GeneratorReport, results: dict[str, Any]) -> list[dict[str, Any]]:
    """The job's rows for a sweep table, as ``task.report`` asks."""
    pairs = pair_columns(results["pairs"])
    if report == GeneratorReport.pairs:
        return [{"generator": dpo, **pairs}]
    training = results["train_dpo"]
    if report == GeneratorReport.curve:
        return [{"generator": dpo, **point} for point in training["curve"]]
    evaluation = results["eval"]["rows"]
    base = next(r for r in evaluation if r["generator"] == "base")
    tuned = next(r for r in evaluation if r["generator"] != "base")
    return [
        {**base, "generator": "original"},
        {**tuned, "generator": dpo, **pairs, "dpo_steps": training["steps"]},
    ]


def _fraction(part: int, whole: int) -> float | None:
    return part / whole if whole else None  # no pairs: no fraction (an empty cell)


def pair_columns(statistics: dict[str, Any]) -> dict[str, Any]:
    """A job's pair statistics (build_pairs' ``statistics.json``) as table columns, with the
    fractions a sweep over K compares: of all K(K-1)/2 candidate pairs per prompt, those the rule
    qualifies; of the kept pairs, those whose winner dominates; of the total rule's, likewise
    (paper Table 5's 72%); and the prompts with a kept pair."""
    total_rule = statistics["total_rule"]
    k = statistics["candidates"]
    candidate_pairs = statistics["prompts"] * k * (k - 1) // 2
    return {
        "threshold": statistics["threshold"],
        "epsilon": statistics["epsilon"],
        "candidates": k,
        "candidate_pairs": candidate_pairs,
        "qualifying_pairs": statistics["qualifying_pairs"],
        "qualifying_fraction": _fraction(statistics["qualifying_pairs"], candidate_pairs),
        "pairs": statistics["pairs"],
        "prompts_with_pairs": statistics["prompts_with_pairs"],
        "pairs_dominating": statistics["pairs_dominating"],
        "pairs_non_dominating": statistics["pairs_non_dominating"],
        "dominating_fraction": _fraction(statistics["pairs_dominating"], statistics["pairs"]),
        "total_rule_pairs": total_rule["total_rule_pairs"],
        "total_rule_dominating": total_rule["dominating"],
        "total_rule_non_dominating": total_rule["non_dominating"],
        "total_rule_dominating_fraction": _fraction(
            total_rule["dominating"], total_rule["total_rule_pairs"]
        ),
        "oracle_agreement": statistics.get("oracle_agreement"),
    }
