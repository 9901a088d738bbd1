"""Scoring many files with a :class:`VisionReward` into a resumable table, one row per item.

Output folder (``task=score``)::

    manifest.json           what the scores were made from: digests of the items, the reward's
                            model and weights, the checklist, the chunk size
    part-00000000.parquet   one row per item (columns below) of a chunk of items, named by its
                            first item, written atomically (unreadable media of the chunk, with
                            skip_bad_media, in its metadata)
    scores.parquet          every part, in item order, gathered at the end
    skipped.json            every skipped file

Columns: ``item_id``, ``media_path``, ``prompt``, ``kind`` (image or video), ``total``, one
``dimension/<name>`` per dimension (its sub-score), one ``p_yes/<id>`` per checklist question and
one ``contribution/<id>`` per weighted question (weight x feature). The schema's metadata holds
the checklist (``vrexp.checklist``, JSON) so a reader can name every question. A part present
after a kill is complete; a rerun with the same manifest scores only the items no part holds
(:mod:`vrexp.data.parts`), one made otherwise is refused naming what changed. Sharded
(``task.shard``), each shard writes this layout in ``shards/I-of-N/`` and the merge gathers them
into it (:mod:`vrexp.data.shards`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from vrexp.checklist import Checklist
from vrexp.data.atomic import atomic_write, claim_output
from vrexp.data.digests import (
    config_digest,
    item_rows,
    items_digest,
    module_digest,
    tensors_sha256,
)
from vrexp.data.items import Item, item_media
from vrexp.data.parts import STALE_PARTS, gather_skipped, read_or_skip, read_parts, write_parts
from vrexp.data.shards import Shard, finish_shard, merge_shards, require_merged, shard_entry
from vrexp.reward.inputs import MediaInput, media_kind
from vrexp.reward.linear import RewardError
from vrexp.reward.scorer import RewardScores, VisionReward

SCORES_FILE = "scores.parquet"
CHECKLIST_KEY = b"vrexp.checklist"


class ScoringError(RewardError):
    """An output folder that belongs to another run, or an item that cannot be scored."""


def dimension_column(name: str) -> str:
    return f"dimension/{name}"


def p_yes_column(question_id: int) -> str:
    return f"p_yes/{question_id}"


def contribution_column(question_id: int) -> str:
    return f"contribution/{question_id}"


def scores_table(
    items: list[Item], kinds: list[str], scores: RewardScores, checklist: Checklist
) -> pa.Table:
    """The rows of ``items`` (scored as ``scores``) in the format above."""
    columns: dict[str, pa.Array] = {
        "item_id": pa.array([i.item_id for i in items], pa.int64()),
        "media_path": pa.array([str(i.media_path) for i in items], pa.string()),
        "prompt": pa.array([i.prompt for i in items], pa.string()),
        "kind": pa.array(kinds, pa.string()),
        "total": pa.array(scores.total.numpy().astype(np.float64), pa.float64()),
    }
    dims = scores.dimensions.numpy().astype(np.float64)
    for d, name in enumerate(scores.dimension_names):
        columns[dimension_column(name)] = pa.array(dims[:, d].reshape(-1), pa.float64())
    p_yes = scores.p_yes.numpy().astype(np.float32)
    for q, question in enumerate(scores.questions):
        columns[p_yes_column(question.id)] = pa.array(p_yes[:, q].reshape(-1), pa.float32())
    contributions = scores.contributions.numpy().astype(np.float64)
    for f, question in enumerate(scores.feature_questions):
        column = contributions[:, f].reshape(-1)
        columns[contribution_column(question.id)] = pa.array(column, pa.float64())
    table = pa.table(columns)
    metadata = {CHECKLIST_KEY: json.dumps(checklist.to_config()).encode()}
    return table.replace_schema_metadata(metadata)


def score_items(
    reward: VisionReward,
    items: list[Item],
    out_dir: str | Path,
    *,
    chunk_size: int = 256,
    skip_bad_media: bool = False,
    manifest: dict[str, Any] | None = None,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
    open_media: Callable[[Item], AbstractContextManager[MediaInput]] | None = None,
    shard: Shard | None = None,
) -> dict[str, Any]:
    """Score ``items`` into ``out_dir`` (format above); returns counts and the skipped files.

    ``manifest`` adds to what the folder records; a folder made otherwise is refused unless
    ``overwrite``. ``open_media`` gives an item's media while it is read (a path, or decoded
    pixels), for media that are not files of their own (a benchmark's images inside a parquet
    file or a zip); by default the item's media (:func:`~vrexp.data.items.item_media`). With a
    ``shard``, only its items are scored, into its folder under ``out_dir``, and the shards are
    merged into ``out_dir`` once all of them are complete (:mod:`vrexp.data.shards`)."""
    out_dir = Path(out_dir)
    folder, todo, extra = out_dir, items, dict(manifest or {})
    if shard is not None:
        folder, todo = shard.folder(out_dir), shard.split(items, chunk_size)
        extra.update(shard_entry(shard, items_digest(item_rows(items))))

    def wanted() -> dict[str, Any]:  # digests computed under the folder's lock
        return {
            "reward": reward_manifest(reward),
            "items": items_digest(item_rows(todo)),
            "task.chunk_size": chunk_size,
            "task.skip_bad_media": skip_bad_media,
            **extra,
        }

    with claim_output(
        folder,
        wanted,
        overwrite,
        stale=(*STALE_PARTS, SCORES_FILE),
        what="scores",
        labels=REWARD_LABELS,
        error=ScoringError,
    ):
        reward.backbone.eval()
        skipped = write_parts(
            folder,
            todo,
            chunk_size,
            lambda chunk: _score_chunk(reward, chunk, skip_bad_media, open_media),
            progress,
            error=ScoringError,
        )
        table = _gather_scores(folder)
    result = {"items": 0 if table is None else table.num_rows, "skipped": skipped}
    if shard is not None:
        result["merged"] = finish_shard(
            shard,
            lambda strict: merge_scores(out_dir, overwrite, count=shard.count, strict=strict),
        )
    return result


def _gather_scores(folder: Path) -> pa.Table | None:
    """Every part of ``folder`` into its ``scores.parquet``, in item order."""
    table = read_parts(folder, "item_id", ("item_id",), error=ScoringError)
    if table is not None:
        atomic_write(folder / SCORES_FILE, lambda p: pq.write_table(table, p))
    return table


def merge_scores(
    out_dir: str | Path, overwrite: bool = False, *, count: int | None = None, strict: bool = True
) -> bool:
    """Merge the shards of ``out_dir`` into it, ``scores.parquet`` and ``skipped.json``
    included (:func:`vrexp.data.shards.merge_shards`)."""

    def finish(folder: Path) -> None:
        gather_skipped(folder)
        _gather_scores(folder)

    return merge_shards(
        out_dir,
        key_column="item_id",
        what="scores",
        stale=(*STALE_PARTS, SCORES_FILE),
        error=ScoringError,
        labels=REWARD_LABELS,
        count=count,
        overwrite=overwrite,
        strict=strict,
        finish=finish,
    )


def reward_manifest(reward: VisionReward) -> dict[str, Any]:
    """What a reward's numbers depend on, for an output folder's manifest: its checklist model
    (folder or weights digest, dtype), its weighting and how it reads answers."""
    return {
        "model": module_digest(reward.backbone),
        "model_dtype": str(next(reward.backbone.parameters()).dtype),
        "weights": {"sha256": tensors_sha256([("weights", reward.reward.weights)])},
        "checklist": config_digest(reward.checklist.to_config(), name=reward.checklist.name),
        "hard_answers": reward.hard_answers,
    }


# How a manifest change is named to the user (keys of reward_manifest and score_items).
REWARD_LABELS = {
    "reward.model": "the reward's checklist model",
    "reward.model_dtype": "the reward model's dtype",
    "reward.weights": "the reward's weights",
    "reward.checklist": "the reward's checklist",
    "reward.hard_answers": "the reward's hard_answers",
    "items": "the items (media and prompts)",
}


def _score_chunk(
    reward: VisionReward,
    items: list[Item],
    skip_bad_media: bool,
    open_media: Callable[[Item], AbstractContextManager[MediaInput]] | None = None,
) -> tuple[pa.Table, list[dict[str, Any]]]:
    def read(item: Item) -> Any:
        with item_media(item) if open_media is None else open_media(item) as media:
            return reward.prepare(media, item.prompt)[0][0]

    read_items, skipped = read_or_skip(items, read, skip_bad_media, ScoringError)
    kept, loaded = [item for item, _ in read_items], [media for _, media in read_items]
    if not kept:
        return _empty_table(reward), skipped
    scores = reward.score(loaded, [i.prompt for i in kept], progress=False)
    kinds = [media_kind(m).value for m in loaded]
    return scores_table(kept, kinds, scores, reward.checklist), skipped


def _empty_table(reward: VisionReward) -> pa.Table:
    checklist = reward.checklist
    empty = RewardScores(
        total=torch.zeros(0),
        dimensions=torch.zeros(0, len(checklist.dimension_names)),
        p_yes=torch.zeros(0, len(checklist.questions)),
        contributions=torch.zeros(0, len(reward.reward.feature_questions)),
        dimension_names=checklist.dimension_names,
        questions=checklist.questions,
        feature_questions=reward.reward.feature_questions,
    )
    return scores_table([], [], empty, checklist)


def read_scores(out_dir: str | Path) -> tuple[pa.Table, Checklist]:
    """The gathered scores of a ``task=score`` folder and the checklist they answer."""
    path = Path(out_dir) / SCORES_FILE
    if not path.is_file():
        require_merged(out_dir, "item_id", ScoringError)
        raise ScoringError(f"{out_dir} holds no {SCORES_FILE}; run `python run.py task=score`")
    table = pq.read_table(path)
    metadata = table.schema.metadata or {}
    if CHECKLIST_KEY not in metadata:
        raise ScoringError(f"{path} has no checklist in its metadata: not written by vrexp")
    return table, Checklist.from_config(json.loads(metadata[CHECKLIST_KEY]))
