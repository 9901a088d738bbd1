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
from vrexp.data.parts import STALE_PARTS, read_or_skip, write_parts
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
) -> dict[str, Any]:
    """Answer ``checklist`` for ``items`` into ``out_dir``; returns counts and skipped files.

    ``manifest`` adds to what the folder records (the items, the model, the checklist and the
    settings that shape the answers); a folder made otherwise is refused unless ``overwrite``."""
    out_dir = Path(out_dir)
    extra = manifest or {}

    def wanted() -> dict[str, Any]:  # digests computed under the folder's lock
        return {
            "checklist": config_digest(checklist.to_config(), name=checklist.name),
            "items": items_digest(item_rows(items)),
            "model": module_digest(backbone),
            "model_dtype": str(next(backbone.parameters()).dtype),
            "task.chunk_size": chunk_size,
            "task.skip_bad_media": skip_bad_media,
            **extra,
        }

    with claim_output(
        out_dir,
        wanted,
        overwrite,
        stale=STALE_PARTS,
        what="annotations",
        labels=MANIFEST_LABELS,
        error=AnnotateError,
    ):
        backbone.eval()
        skipped = write_parts(
            out_dir,
            items,
            chunk_size,
            lambda chunk: _annotate_chunk(backbone, checklist, chunk, batch_size, skip_bad_media),
            progress,
            error=AnnotateError,
        )
        rows = read_annotations(out_dir).num_rows
    return {"items": len(items) - len(skipped), "rows": rows, "skipped": skipped}


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
    out_dir = Path(task.out_dir or Path(cfg.paths.output_dir) / "annotations")
    checklist = Checklist.from_config(cfg.dimensions)
    items = dataset_items(OmegaConf.to_object(cfg.dataset), checklist)
    overrides = {} if task.dtype is None else {"dtype": task.dtype}
    backbone = load_backbone(task.model_dir, **overrides).to(resolve_device(task.device))
    manifest = {"dataset": OmegaConf.to_container(cfg.dataset, resolve=True, enum_to_str=True)}
    with stage_logger(cfg, logger) as logger:
        with Progress(transient=True) as bar:
            job = bar.add_task("annotating", total=len(items))
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
            )
        if logger is not None:
            logger.log_metrics(
                {"annotate/items": result["items"], "annotate/skipped": len(result["skipped"])}
            )
        log.info(
            "%d answers for %d items written to %s%s",
            result["rows"],
            result["items"],
            out_dir,
            f"; {len(result['skipped'])} unreadable files recorded in skipped.json"
            if result["skipped"]
            else "",
        )
    return {**result, "out_dir": str(out_dir)}
