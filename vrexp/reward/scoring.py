"""Scoring many files with a :class:`VisionReward` into a resumable table, one row per item.

Output folder (``task=score``)::

    manifest.json           the reward, checklist and items the scores belong to
    part-00000.parquet      one row per item (columns below), written atomically
    skipped-00000.json      unreadable media of that part (only with skip_bad_media)
    scores.parquet          every part, in item order, gathered at the end
    skipped.json            every skipped file

Columns: ``item_id``, ``media_path``, ``prompt``, ``kind`` (image or video), ``total``, one
``dimension/<name>`` per dimension (its sub-score), one ``p_yes/<id>`` per checklist question and
one ``contribution/<id>`` per weighted question (weight x feature). The schema's metadata holds
the checklist (``vrexp.checklist``, JSON) so a reader can name every question. A part present
after a kill is complete; a re-run scores only the missing parts.
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
from vrexp.data.atomic import OutputClaimError, atomic_write, claim_output
from vrexp.data.items import Item
from vrexp.data.parts import STALE_PARTS, read_or_skip, write_parts
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
) -> dict[str, Any]:
    """Score ``items`` into ``out_dir`` (format above); returns counts and the skipped files.

    ``open_media`` gives an item's media while it is read (a path, or decoded pixels), for media
    that are not files of their own (a benchmark's images inside a parquet file or a zip); by
    default the item's ``media_path`` is read."""
    out_dir = Path(out_dir)
    manifest = {"checklist": reward.checklist.to_config(), **(manifest or {})}
    try:
        claim_output(
            out_dir,
            manifest,
            overwrite,
            stale=(*STALE_PARTS, SCORES_FILE),
            what="scores from another reward, checklist or item list",
        )
    except OutputClaimError as err:
        raise ScoringError(str(err)) from None
    reward.backbone.eval()
    skipped = write_parts(
        out_dir,
        items,
        chunk_size,
        lambda chunk: _score_chunk(reward, chunk, skip_bad_media, open_media),
        progress,
    )
    parts = sorted(out_dir.glob("part-*.parquet"))
    tables = [pq.read_table(p) for p in parts]
    table = pa.concat_tables(tables).sort_by("item_id") if tables else None
    if table is not None:
        atomic_write(out_dir / SCORES_FILE, lambda p: pq.write_table(table, p))
    return {"items": 0 if table is None else table.num_rows, "skipped": skipped}


def _score_chunk(
    reward: VisionReward,
    items: list[Item],
    skip_bad_media: bool,
    open_media: Callable[[Item], AbstractContextManager[MediaInput]] | None = None,
) -> tuple[pa.Table, list[dict[str, Any]]]:
    def read(item: Item) -> Any:
        if open_media is None:
            return reward.prepare(item.media_path, item.prompt)[0][0]
        with open_media(item) as media:
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
        raise ScoringError(f"{out_dir} holds no {SCORES_FILE}; run `python run.py task=score`")
    table = pq.read_table(path)
    metadata = table.schema.metadata or {}
    if CHECKLIST_KEY not in metadata:
        raise ScoringError(f"{path} has no checklist in its metadata: not written by vrexp")
    return table, Checklist.from_config(json.loads(metadata[CHECKLIST_KEY]))
