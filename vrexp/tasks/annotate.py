"""Stage ``annotate``: P(yes) for every (item, question), written resumably as parquet parts.

Output folder::

    manifest.json            what the answers were made from: digests of the items and the
                             model folder, the checklist, the dataset, chunk size, dtype
    part-00000000.parquet    item_id, media_path, prompt, question_id, question, p_yes of a chunk
                             of items (named by its first item; unreadable media of the chunk,
                             with task.skip_bad_media=true, in its metadata)
    skipped.json             all skipped files, gathered at the end

A part is written to a temporary name and renamed, so after a kill every part present is complete;
a rerun with the same manifest answers only the items no part holds (:mod:`vrexp.data.parts`),
and one with another model, item list or setting is refused naming what changed.

With ``task.shard=I/N`` (or as a rank of ``torchrun``) the job answers its share of the items
into ``shards/I-of-N/``, a folder of the layout above, and the shards are merged into this
layout once all are complete (:mod:`vrexp.data.shards`, docs/sharding.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger
from rich.progress import Progress

from vrexp.backbones import ChecklistBackbone, load_backbone
from vrexp.backbones.provenance import resolve_device
from vrexp.checklist import Checklist
from vrexp.data.annotations import read_annotations
from vrexp.data.atomic import claim_output
from vrexp.data.digests import config_digest, item_rows, items_digest, module_digest
from vrexp.data.items import Item, dataset_items, item_media
from vrexp.data.parts import STALE_PARTS, gather_skipped, read_or_skip, write_parts
from vrexp.data.shards import (
    MERGE,
    Shard,
    finish_shard,
    merge_note,
    merge_shards,
    parse_shard,
    progress_label,
    require_shared_out_dir,
    shard_device,
    shard_entry,
)
from vrexp.tracking import stage_logger

log = logging.getLogger(__name__)


class AnnotateError(RuntimeError):
    """An output folder that belongs to another run, or media that cannot be read."""


def annotate_items(
    backbone: ChecklistBackbone,
    checklist: Checklist,
    items: list[Item],
    out_dir: str | Path,
    *,
    batch_size: int = 32,
    chunk_size: int = 512,
    skip_bad_media: bool = False,
    manifest: dict[str, Any] | None = None,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
    shard: Shard | None = None,
) -> dict[str, Any]:
    """Answer ``checklist`` for ``items`` into ``out_dir``; returns counts and skipped files.

    ``manifest`` adds to what the folder records (the items, the model, the checklist and the
    settings that shape the answers); a folder made otherwise is refused unless ``overwrite``.
    With a ``shard``, only its items are answered, into its folder under ``out_dir``, and the
    shards are merged into ``out_dir`` once all of them are complete (:mod:`vrexp.data.shards`)."""
    out_dir = Path(out_dir)
    folder, todo, extra = out_dir, items, dict(manifest or {})
    if shard is not None:
        folder, todo = shard.folder(out_dir), shard.split(items, chunk_size)
        extra.update(shard_entry(shard, items_digest(item_rows(items))))

    def wanted() -> dict[str, Any]:  # digests computed under the folder's lock
        return {
            "checklist": config_digest(checklist.to_config(), name=checklist.name),
            "items": items_digest(item_rows(todo)),
            "model": module_digest(backbone),
            "model_dtype": str(next(backbone.parameters()).dtype),
            "task.chunk_size": chunk_size,
            "task.skip_bad_media": skip_bad_media,
            **extra,
        }

    with claim_output(
        folder,
        wanted,
        overwrite,
        stale=STALE_PARTS,
        what="annotations",
        labels=MANIFEST_LABELS,
        error=AnnotateError,
    ):
        backbone.eval()
        skipped = write_parts(
            folder,
            todo,
            chunk_size,
            lambda chunk: _annotate_chunk(backbone, checklist, chunk, batch_size, skip_bad_media),
            progress,
            error=AnnotateError,
        )
        rows = read_annotations(folder).num_rows if todo else 0  # a shard may have no part
    result = {"items": len(todo) - len(skipped), "rows": rows, "skipped": skipped}
    if shard is not None:
        result["merged"] = finish_shard(
            shard,
            lambda strict: merge_annotations(out_dir, overwrite, count=shard.count, strict=strict),
        )
    return result


def merge_annotations(
    out_dir: str | Path, overwrite: bool = False, *, count: int | None = None, strict: bool = True
) -> bool:
    """Merge the shards of ``out_dir`` into it (:func:`vrexp.data.shards.merge_shards`)."""
    return merge_shards(
        out_dir,
        key_column="item_id",
        what="annotations",
        stale=STALE_PARTS,
        error=AnnotateError,
        labels=MANIFEST_LABELS,
        count=count,
        overwrite=overwrite,
        strict=strict,
        finish=gather_skipped,
    )


# How a manifest change is named to the user (the keys are those of the manifest above).
MANIFEST_LABELS = {
    "model": "the model",
    "model_dtype": "the model's dtype",
    "items": "the items (prompts file or split)",
    "checklist": "the checklist",
}


def _annotate_chunk(
    backbone: ChecklistBackbone,
    checklist: Checklist,
    items: list[Item],
    batch_size: int,
    skip_bad_media: bool,
) -> tuple[pa.Table, list[dict[str, Any]]]:
    def read(item: Item) -> Any:
        with item_media(item) as path:
            return backbone.read_media(path)

    loaded, skipped = read_or_skip(items, read, skip_bad_media, AnnotateError)
    questions = checklist.vlm_questions
    columns: dict[str, list] = {
        k: [] for k in ("item_id", "media_path", "prompt", "question_id", "question", "p_yes")
    }
    texts = [[q.render(item.prompt, item=item.item_id) for q in questions] for item, _ in loaded]
    p_yes = backbone.answer_batched([m for _, m in loaded], texts, batch_size)
    for (item, _), row_texts, row_p in zip(loaded, texts, p_yes, strict=True):
        columns["item_id"] += [item.item_id] * len(questions)
        columns["media_path"] += [str(item.media_path)] * len(questions)
        columns["prompt"] += [item.prompt] * len(questions)
        columns["question_id"] += [q.id for q in questions]
        columns["question"] += row_texts
        columns["p_yes"] += row_p.tolist()
    order = (
        np.lexsort((columns["question_id"], columns["item_id"]))
        if columns["item_id"]
        else np.zeros(0, int)
    )
    table = pa.table(
        {
            "item_id": pa.array(np.asarray(columns["item_id"], dtype=np.int64)[order]),
            "media_path": pa.array([columns["media_path"][i] for i in order], pa.string()),
            "prompt": pa.array([columns["prompt"][i] for i in order], pa.string()),
            "question_id": pa.array(np.asarray(columns["question_id"], dtype=np.int32)[order]),
            "question": pa.array([columns["question"][i] for i in order], pa.string()),
            "p_yes": pa.array(np.asarray(columns["p_yes"], dtype=np.float32)[order]),
        }
    )
    return table, skipped


def annotate(cfg: DictConfig, logger: Logger | None = None) -> dict[str, Any]:
    task = OmegaConf.to_object(cfg.task)
    shard = parse_shard(task.shard)
    if shard is not None:
        require_shared_out_dir(task.out_dir, shard)
    out_dir = Path(task.out_dir or Path(cfg.paths.output_dir) / "annotations")
    if shard == MERGE:
        merge_annotations(out_dir, task.overwrite)
        table = read_annotations(out_dir)
        log.info(
            "%d answers for %d items merged into %s",
            table.num_rows,
            len(set(table.column("item_id").to_pylist())),
            out_dir,
        )
        return {"rows": table.num_rows, "out_dir": str(out_dir), "merged": True}
    checklist = Checklist.from_config(cfg.dimensions)
    items = dataset_items(OmegaConf.to_object(cfg.dataset), checklist)
    overrides = {} if task.dtype is None else {"dtype": task.dtype}
    device = shard_device(resolve_device(task.device), shard)
    backbone = load_backbone(task.model_dir, **overrides).to(device)
    manifest = {"dataset": OmegaConf.to_container(cfg.dataset, resolve=True, enum_to_str=True)}
    reports = shard is None or shard.reports
    with stage_logger(cfg, logger) as logger:
        mine = len(items) if shard is None else shard.size(len(items), task.chunk_size)
        with Progress(transient=True, disable=not reports) as bar:
            job = bar.add_task(progress_label("annotating", shard), total=mine)
            result = annotate_items(
                backbone,
                checklist,
                items,
                out_dir,
                batch_size=task.batch_size,
                chunk_size=task.chunk_size,
                skip_bad_media=task.skip_bad_media,
                manifest=manifest,
                overwrite=task.overwrite,
                progress=lambda n: bar.advance(job, n),
                shard=shard,
            )
        if logger is not None and reports:
            logger.log_metrics(
                {"annotate/items": result["items"], "annotate/skipped": len(result["skipped"])}
            )
        (log.info if reports else log.debug)(
            "%d answers for %d items written to %s%s%s",
            result["rows"],
            result["items"],
            out_dir if shard is None else shard.folder(out_dir),
            f"; {len(result['skipped'])} unreadable files recorded in skipped.json"
            if result["skipped"]
            else "",
            "" if shard is None else f" (shard {shard.label}{merge_note(result, out_dir)})",
        )
    return {**result, "out_dir": str(out_dir)}
