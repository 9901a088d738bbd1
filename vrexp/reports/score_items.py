"""From a ``task=score`` table to what people look at: report items and W&B table rows.

The thumbnails are re-read from the media files at the frames the backbone saw (a video's
sampled frames, not the whole clip) and shrunk at once, so a report of hundreds of long videos
holds only small pictures in memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from PIL import Image

from vrexp.checklist import Checklist
from vrexp.configs import FrameSampling
from vrexp.media import Clip, MediaError, load_for_model
from vrexp.reports.score_report import ReportItem
from vrexp.reward.scoring import contribution_column, dimension_column, p_yes_column

STRIP_FRAMES = 8


def shown_rows(table: pa.Table, max_items: int) -> tuple[list[int], list[str]]:
    """Row indices to show one by one (best first): all of them, or the best and the worst
    halves of ``max_items`` when there are more; and a note saying which."""
    order = np.argsort(-table.column("total").to_numpy(), kind="stable")
    if len(order) <= max_items:
        return order.tolist(), []
    best, worst = max_items // 2, max_items - max_items // 2
    note = (
        f"{len(order)} items scored; the {best} best and the {worst} worst are shown one by "
        "one (the summary covers all of them; every row is in scores.parquet)"
    )
    return [*order[:best].tolist(), *order[-worst:].tolist()], [note]


def thumbnails(
    path: str | Path, sampling: FrameSampling, size: int
) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """(poster, strip): an image, or a video's middle sampled frame and up to eight of its
    sampled frames, each shrunk to at most ``size`` pixels on its long side."""
    media = load_for_model(path, sampling)
    if not isinstance(media, Clip):
        return _shrink(media, size), ()
    frames = media.frames
    pick = np.linspace(0, len(frames) - 1, min(STRIP_FRAMES, len(frames))).round().astype(int)
    strip = tuple(_shrink(frames[i], max(size // 2, 16)) for i in pick)
    return _shrink(frames[len(frames) // 2], size), strip


def _shrink(frame: np.ndarray, size: int) -> np.ndarray:
    image = Image.fromarray(frame)
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    return np.asarray(image)


def _placeholder(size: int) -> np.ndarray:
    return np.full((size, size, 3), 200, dtype=np.uint8)


def table_report_items(
    table: pa.Table,
    checklist: Checklist,
    sampling: FrameSampling,
    *,
    max_items: int = 500,
    thumbnail_size: int = 256,
    skipped: list[dict[str, Any]] | None = None,
) -> tuple[list[ReportItem], list[str]]:
    """The report's items (best first) and its notes, from a gathered scores table."""
    rows, notes = shown_rows(table, max_items)
    if skipped:
        notes.append(f"{len(skipped)} unreadable files were skipped (skipped.json)")
    columns = table.to_pydict()
    items = []
    for row in rows:
        path, prompt = columns["media_path"][row], columns["prompt"][row]
        try:
            poster, strip = thumbnails(path, sampling, thumbnail_size)
        except MediaError:  # moved or deleted since it was scored: the numbers still stand
            poster, strip = _placeholder(thumbnail_size), ()
        questions = []
        for q in checklist.questions:
            contribution = columns.get(contribution_column(q.id))
            questions.append(
                {
                    "id": q.id,
                    "dimension": q.dimension,
                    "question": q.render(prompt),
                    "p_yes": float(columns[p_yes_column(q.id)][row]),
                    "contribution": None if contribution is None else float(contribution[row]),
                }
            )
        items.append(
            ReportItem(
                item_id=int(columns["item_id"][row]),
                name=Path(path).name,
                prompt=prompt,
                total=float(columns["total"][row]),
                dimensions={
                    name: float(columns[dimension_column(name)][row])
                    for name in checklist.dimension_names
                },
                questions=questions,
                poster=poster,
                strip=strip,
            )
        )
    return items, notes


def media_table_rows(
    table: pa.Table, checklist: Checklist, sampling: FrameSampling, *, thumbnail_size: int = 128
) -> tuple[list[str], list[list[Any]], str]:
    """(columns, rows, media column) of a W&B table: the poster of each item (a numpy image,
    which the tracking layer wraps), its file, prompt, total and sub-scores."""
    names = checklist.dimension_names
    columns = ["item_id", "media", "media_path", "prompt", "total", *names]
    data = table.to_pydict()
    rows = []
    for row in range(table.num_rows):
        path = data["media_path"][row]
        try:
            poster, _ = thumbnails(path, sampling, thumbnail_size)
        except MediaError:
            poster = _placeholder(thumbnail_size)
        rows.append(
            [
                data["item_id"][row],
                poster,
                path,
                data["prompt"][row],
                data["total"][row],
                *(data[dimension_column(n)][row] for n in names),
            ]
        )
    return columns, rows, "media"
