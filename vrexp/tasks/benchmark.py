"""Stage ``benchmark``: a reward on a public benchmark, under the benchmark's own protocols.

``python run.py task=benchmark dataset=<benchmark> dataset.root=DIR task.scores=FILE`` (or
``task.reward_dir=DIR``, or ``task.official=NAME`` with a backbone) writes ``benchmark.json``,
``benchmark.md``, ``benchmark.csv`` and ``benchmark_dimensions.csv`` in the run folder
(:mod:`vrexp.reports.benchmark`); ``task.export_items=FILE`` writes the keys to score elsewhere.
Pick-a-Pic's ``pickapic`` protocol also reads ``validation_unique``, where its threshold is chosen.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger
from rich.progress import Progress

from vrexp.configs.choices import Protocol
from vrexp.configs.dataset import BENCHMARK_SPLITS
from vrexp.data.benchmarks import Benchmark, load_benchmark
from vrexp.data.benchmarks.scores import (
    KeyScores,
    export_items,
    read_scores_file,
    scores_file_for,
)
from vrexp.data.visionrewarddb import load_checklist_items, visionrewarddb_items
from vrexp.reports.benchmark import (
    PICKAPIC_THRESHOLD_SPLIT,
    benchmark_layout,
    benchmark_protocols,
    evaluate_benchmark,
    sweep_row,
    write_benchmark,
)
from vrexp.reports.checklist_benchmark import HEADLINE, checklist_accuracy_record
from vrexp.reports.sweep import job_overrides, write_results
from vrexp.reports.tables import write_table
from vrexp.reward.benchmark import score_benchmark
from vrexp.reward.scorer import load_reward
from vrexp.reward.scoring import p_yes_column, read_scores, score_items
from vrexp.tracking import stage_logger

log = logging.getLogger(__name__)


def _splits(dataset: Any, task: Any) -> tuple[Benchmark, Benchmark | None]:
    """The evaluated split, and the split Pick-a-Pic's threshold is chosen on (if needed)."""
    bench = load_benchmark(dataset)
    protocols = benchmark_protocols(bench, task.protocols)
    if Protocol.pickapic not in protocols:
        return bench, None
    if PICKAPIC_THRESHOLD_SPLIT not in BENCHMARK_SPLITS[bench.name]:
        raise ValueError(
            f"task.protocols: pickapic chooses its tie threshold on Pick-a-Pic's "
            f"{PICKAPIC_THRESHOLD_SPLIT} split, which {bench.name} does not have"
        )
    if bench.split == PICKAPIC_THRESHOLD_SPLIT:
        return bench, bench
    return bench, load_benchmark(dataclasses.replace(dataset, split=PICKAPIC_THRESHOLD_SPLIT))


def _model_scores(cfg: DictConfig, task: Any, splits: list[Benchmark], out_dir: Path) -> KeyScores:
    """A VisionReward's scores of every split's keys, each split resumable in its own folder."""
    reward = load_reward(task, OmegaConf.to_object(cfg.backbone))
    source = _model_source(task)
    total: dict[str, float] = {}
    dimensions: dict[str, dict[str, float]] = {}
    for bench in splits:
        where = Path(task.scores_dir) if task.scores_dir else out_dir / "scores"
        with Progress(transient=True) as bar:
            job = bar.add_task(f"scoring {bench.name} {bench.split}", total=None)
            scores = score_benchmark(
                reward,
                bench,
                where / bench.split,
                chunk_size=task.chunk_size,
                overwrite=task.overwrite,
                manifest={"reward": source},
                progress=lambda n, job=job: bar.advance(job, n),
            )
        total.update(scores.total)
        for name, values in scores.dimensions.items():
            dimensions.setdefault(name, {}).update(values)
    return KeyScores(total, dimensions)


def benchmark(cfg: DictConfig, logger: Logger | None = None) -> dict[str, Any]:
    task = OmegaConf.to_object(cfg.task)
    dataset = OmegaConf.to_object(cfg.dataset)
    out_dir = Path(task.out_dir or cfg.paths.output_dir)
    if getattr(dataset, "kind", None) == "visionrewarddb":
        return _checklist_benchmark(cfg, task, dataset, out_dir, logger)
    if getattr(dataset, "kind", None) != "benchmark":
        raise ValueError(
            f"task=benchmark needs a benchmark dataset (dataset=<name>, e.g. hpdv2_test) or "
            f"VisionRewardDB's checklist labels (dataset=visionrewarddb_image, split=heldout); "
            f"got dataset={cfg.dataset.name}"
        )
    bench, threshold_bench = _splits(dataset, task)
    splits = [bench] + ([threshold_bench] if threshold_bench not in (None, bench) else [])
    result: dict[str, Any] = {}
    if task.export_items is not None:
        count = export_items(splits, task.export_items)
        log.info(
            "%d keys of %s %s written to %s",
            count,
            bench.name,
            "+".join(b.split for b in splits),
            task.export_items,
        )
        result["export_items"] = {"path": str(task.export_items), "keys": count}
        if task.scores is None and task.reward_dir is None and task.official is None:
            return result
    layout = benchmark_layout(bench)
    threshold_layout = None
    if threshold_bench is not None:
        threshold_layout = layout if threshold_bench is bench else benchmark_layout(threshold_bench)
    if task.scores is not None:
        scores_file = scores_file_for(task.scores, str(bench.name))
        scores = read_scores_file(scores_file)
        reward = {"scores": str(scores_file.resolve())}
    else:
        scores = _model_scores(cfg, task, splits, out_dir)
        reward = _model_reward(task)
    record = evaluate_benchmark(
        layout,
        scores,
        protocols=task.protocols,
        model_ties=task.model_ties,
        threshold_layout=threshold_layout,
        num_resamples=task.num_resamples,
        seed=cfg.seed,
    )
    name = task.reward_name or _reward_name(task)
    record = {**record, "reward": {**reward, "name": name}}
    paths = write_benchmark(record, out_dir)
    write_results(cfg.paths.output_dir, [sweep_row(record, name)], job_overrides())
    _log_record(cfg, logger, record)
    headline = bench.protocols[0]
    log.info(
        "%s %s: %s = %s (95%% CI %s); %s; written to %s",
        bench.name,
        bench.split,
        headline,
        record["metrics"].get(headline),
        record["intervals"].get(headline),
        record["counts"],
        paths["json"],
    )
    return {**result, **record, "files": {k: str(v) for k, v in paths.items()}}


def _model_source(task: Any) -> str:
    """What a model reward's scores depend on, for their folder's manifest."""
    return str(Path(task.reward_dir).resolve()) if task.reward_dir else task.official


def _model_reward(task: Any) -> dict[str, str]:
    """Where a model reward came from, as ``benchmark.json`` records it."""
    return {"reward_dir": task.reward_dir} if task.reward_dir else {"official": task.official}


def _reward_name(task: Any) -> str:
    """The reward's name in tables: its scores file or folder, its folder, or the official name."""
    if task.scores is not None:
        path = Path(task.scores)
        return path.name if path.is_dir() else path.stem
    if task.reward_dir is not None:
        return Path(task.reward_dir).resolve().name
    return f"official:{task.official}"


def _log_record(cfg: DictConfig, logger: Logger | None, record: dict[str, Any]) -> None:
    with stage_logger(cfg, logger) as logger:
        if logger is not None:
            logged = {f"benchmark/{k}": v for k, v in record["metrics"].items() if v is not None}
            for name, (low, high) in record["intervals"].items():
                if low is not None and high is not None:
                    logged[f"benchmark/{name}_low"], logged[f"benchmark/{name}_high"] = low, high
            logged.update({f"benchmark/num_{k}": v for k, v in record["counts"].items()})
            logger.log_metrics(logged)


def _checklist_benchmark(
    cfg: DictConfig, task: Any, dataset: Any, out_dir: Path, logger: Logger | None
) -> dict[str, Any]:
    """A reward's checklist answers on VisionRewardDB rows against their human labels: per
    question and per dimension (:mod:`vrexp.reports.checklist_benchmark`)."""
    if task.reward_dir is None and task.official is None:
        raise ValueError(
            f"task=benchmark on {dataset.name} compares a model's checklist answers with the "
            "human labels: give task.reward_dir=DIR or task.official=NAME (a scores file holds "
            "no per-question answers)"
        )
    if dataset.split == "regression":
        raise ValueError(
            f"dataset.split=regression holds preference pairs, not checklist labels; use "
            f"task=evaluate on them, or dataset.split=heldout here (dataset={dataset.name})"
        )
    reward = load_reward(task, OmegaConf.to_object(cfg.backbone))
    checklist = reward.checklist
    listed = load_checklist_items(dataset, checklist)
    rows = listed.rows(("train", "val") if dataset.split == "train" else "heldout")
    items = visionrewarddb_items(dataset, checklist)
    source = _model_source(task)
    where = Path(task.scores_dir) if task.scores_dir else out_dir / "scores" / dataset.split
    with Progress(transient=True) as bar:
        job = bar.add_task(f"answering {dataset.name} {dataset.split}", total=len(items))
        score_items(
            reward,
            items,
            where,
            chunk_size=task.chunk_size,
            manifest={"reward": source, "dataset": dataset.name, "split": dataset.split},
            overwrite=task.overwrite,
            progress=lambda n: bar.advance(job, n),
        )
    table, _ = read_scores(where)
    index = {int(i): r for r, i in enumerate(table.column("item_id").to_pylist())}
    order = [index[int(listed.item_ids[r])] for r in rows]
    p_yes = np.full((len(rows), len(checklist.questions)), np.nan)
    for q in checklist.questions:
        if p_yes_column(q.id) in table.column_names:
            values = np.asarray(table.column(p_yes_column(q.id)), dtype=np.float64)
            p_yes[:, checklist.column(q.id)] = values[order]
    record = checklist_accuracy_record(
        p_yes,
        listed.labels[rows].astype(np.float64),
        listed.applicable[rows],
        checklist,
        benchmark=str(dataset.name),
        split=dataset.split,
        revision=listed.revision,
        num_resamples=task.num_resamples,
        seed=cfg.seed,
    )
    name = task.reward_name or _reward_name(task)
    record["reward"] = {
        **_model_reward(task),
        "name": name,
    }
    paths = write_benchmark(record, out_dir)
    paths["questions_csv"] = write_table(record["per_question"], out_dir, "benchmark_questions")[
        "csv"
    ]
    write_results(cfg.paths.output_dir, [sweep_row(record, name)], job_overrides())
    _log_record(cfg, logger, record)
    log.info(
        "%s %s: checklist accuracy %s (95%% CI %s) over %d answers; written to %s",
        dataset.name,
        dataset.split,
        record["metrics"][HEADLINE],
        record["intervals"][HEADLINE],
        record["counts"]["answers"],
        paths["json"],
    )
    return {**record, "files": {k: str(v) for k, v in paths.items()}}
