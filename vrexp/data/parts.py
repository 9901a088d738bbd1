"""Resumable outputs written as parts: one parquet part (and one skipped-files record) per chunk
of items, each written atomically, so a killed job resumes at the first missing part.

``annotate`` and ``score`` write their folders this way; :func:`read_or_skip` is their shared rule
for unreadable media: fail naming the item, or (when the user asked) record it and go on.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from vrexp.atomic import atomic_write
from vrexp.data.items import Item
from vrexp.media import MediaError

T = TypeVar("T")
SKIPPED_FILE = "skipped.json"
STALE_PARTS = ("part-*.parquet", "skipped*.json")  # what overwrite clears


def write_parts(
    out_dir: Path,
    items: Sequence[Item],
    chunk_size: int,
    build: Callable[[Sequence[Item]], tuple[pa.Table, list[dict[str, Any]]]],
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """Write ``part-NNNNN.parquet`` and ``skipped-NNNNN.json`` for each chunk of ``items`` not
    written yet (``build`` turns a chunk into its table and skipped files); then gather every
    skipped file into ``skipped.json`` and return them."""
    for start in range(0, len(items), chunk_size):
        index = start // chunk_size
        part = out_dir / f"part-{index:05d}.parquet"
        chunk = items[start : start + chunk_size]
        if not part.exists():
            table, skipped = build(chunk)
            atomic_write(
                out_dir / f"skipped-{index:05d}.json",
                lambda p, s=skipped: p.write_text(json.dumps(s, indent=2)),
            )
            atomic_write(part, lambda p, t=table: pq.write_table(t, p))
        if progress is not None:
            progress(len(chunk))
    skipped = [
        entry
        for path in sorted(out_dir.glob("skipped-*.json"))
        for entry in json.loads(path.read_text())
    ]
    atomic_write(out_dir / SKIPPED_FILE, lambda p: p.write_text(json.dumps(skipped, indent=2)))
    return skipped


def read_or_skip(
    items: Sequence[Item],
    read: Callable[[Item], T],
    skip_bad_media: bool,
    error: type[Exception],
) -> tuple[list[tuple[Item, T]], list[dict[str, Any]]]:
    """``read`` every item; a :class:`MediaError` raises ``error`` naming the item, or with
    ``skip_bad_media`` is recorded (item id, path, error) and the item left out."""
    loaded, skipped = [], []
    for item in items:
        try:
            loaded.append((item, read(item)))
        except MediaError as err:
            if not skip_bad_media:
                raise error(
                    f"item {item.item_id}: {err} (set task.skip_bad_media=true to skip and "
                    "record such files)"
                ) from err
            skipped.append(
                {"item_id": item.item_id, "media_path": str(item.media_path), "error": str(err)}
            )
    return loaded, skipped
