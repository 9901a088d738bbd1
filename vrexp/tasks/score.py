"""Stage ``score``: a VisionReward scores your media; a parquet, an HTML report, a W&B table.

``python run.py task=score task.reward_dir=DIR task.media=PATH task.prompt="..."`` (or
``task.list_file=FILE`` with a prompt per file, or a ``dataset=``) writes, in ``task.out_dir``
(default ``<run>/scores``), the resumable per-item table of :mod:`vrexp.reward.scoring` and
``report.html``: open it in a browser (:mod:`vrexp.reports.score_report`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger
from rich.progress import Progress

from vrexp.backbones.provenance import resolve_device
from vrexp.checklist import Checklist
from vrexp.data.items import Item, dataset_items, folder_items, media_files
from vrexp.data.parts import gather_skipped
from vrexp.data.shards import (
    MERGE,
    Shard,
    merge_note,
    parse_shard,
    progress_label,
    require_shared_out_dir,
    shard_device,
)
from vrexp.reports.score_items import media_table_rows, table_report_items
from vrexp.reports.score_report import write_score_report
from vrexp.reward.scorer import load_reward
from vrexp.reward.scoring import merge_scores, read_scores, score_items
from vrexp.tracking import log_media_table, stage_logger

log = logging.getLogger(__name__)


def task_items(cfg: DictConfig, task: Any, checklist: Checklist) -> list[Item]:
    if task.media is not None:
        return [Item(i, path, task.prompt) for i, path in enumerate(media_files(task.media))]
    if task.list_file is not None:
        path = Path(task.list_file)
        return folder_items(path.parent, path, allow_outside_root=task.allow_outside_root)
    return dataset_items(OmegaConf.to_object(cfg.dataset), checklist)


def score(cfg: DictConfig, logger: Logger | None = None) -> dict[str, Any]:
    task = OmegaConf.to_object(cfg.task)
    shard = parse_shard(task.shard)
    if shard is not None:
        require_shared_out_dir(task.out_dir, shard)
    out_dir = Path(task.out_dir or Path(cfg.paths.output_dir) / "scores")
    if isinstance(shard, Shard):
        task.device = str(shard_device(resolve_device(task.device), shard))
    reward = load_reward(task, OmegaConf.to_object(cfg.backbone))  # the report reads its frames
    reports = shard is None or shard == MERGE or shard.reports
    with stage_logger(cfg, logger) as logger:
        if shard == MERGE:
            merge_scores(out_dir, task.overwrite)
            result = {}
        else:
            items = task_items(cfg, task, reward.checklist)
            mine = len(items) if shard is None else shard.size(len(items), task.chunk_size)
            with Progress(transient=True, disable=not reports) as bar:
                job = bar.add_task(progress_label("scoring", shard), total=mine)
                result = score_items(
                    reward,
                    items,
                    out_dir,
                    chunk_size=task.chunk_size,
                    skip_bad_media=task.skip_bad_media,
                    overwrite=task.overwrite,
                    progress=lambda n: bar.advance(job, n),
                    shard=shard,
                )
            if isinstance(shard, Shard) and not (result["merged"] and reports):
                (log.info if reports else log.debug)(
                    "%d items scored into %s (shard %s%s)",
                    result["items"],
                    shard.folder(out_dir),
                    shard.label,
                    merge_note(result, out_dir),
                )
                return {**result, "out_dir": str(out_dir), "report": None}
        table, checklist = read_scores(out_dir)
        if shard is not None:  # the merged table's counts, not one shard's
            result = {**result, "items": table.num_rows}
            result["skipped"] = gather_skipped(out_dir, skipped_file=None)
        report = None
        if task.report and table.num_rows:
            shown, notes = table_report_items(
                table,
                checklist,
                reward.backbone.config.frames,
                max_items=task.report_max_items,
                thumbnail_size=task.thumbnail_size,
                skipped=result["skipped"],
            )
            report = write_score_report(
                out_dir / "report.html",
                shown,
                dimension_names=checklist.dimension_names,
                title=f"VisionReward scores ({checklist.name}, {table.num_rows} items)",
                notes=notes,
                thumbnail_size=task.thumbnail_size,
            )
        if logger is not None:
            logger.log_metrics(
                {"score/num_items": result["items"], "score/num_skipped": len(result["skipped"])}
            )
            if task.log_table and table.num_rows:
                columns, rows, media = media_table_rows(
                    table, checklist, reward.backbone.config.frames
                )
                log_media_table(logger, "score/items", columns, rows, media)
    totals = table.column("total").to_numpy() if table.num_rows else []
    log.info(
        "%d items scored into %s%s (mean total %.3f)%s",
        result["items"],
        out_dir / "scores.parquet",
        f"; report: {report}" if report else "",
        float(sum(totals) / len(totals)) if len(totals) else float("nan"),
        f"; {len(result['skipped'])} unreadable files recorded in skipped.json"
        if result["skipped"]
        else "",
    )
    return {**result, "out_dir": str(out_dir), "report": str(report) if report else None}
