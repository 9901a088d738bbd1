"""Resumable outputs written as parts keyed by item: each part is one parquet file, written
atomically, that holds the rows of a chunk of items and (in its schema metadata) the items of
that chunk that were skipped as unreadable.

A part is named by the first item of its chunk, and a rerun lists the items the parts already
hold (rows and skipped records) and processes only the others, so no chunk size or kill point can
lose or duplicate an item. Reading a folder back checks that no item is in two parts and, where
the manifest records how many items the job has, that all of them are there.

``annotate``, ``score``, ``sample`` and ``make_data`` write their folders this way;
:func:`read_or_skip` is the shared rule for unreadable media: fail naming the item, or (when the
user asked) record it and go on.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from vrexp.atomic import atomic_write
from vrexp.data.atomic import read_manifest
from vrexp.media import MediaError

if TYPE_CHECKING:
    from vrexp.data.items import Item

T = TypeVar("T")
K = TypeVar("K")
SKIPPED_FILE = "skipped.json"
PART_GLOB = "part-*.parquet"
STALE_PARTS = (PART_GLOB, "skipped*.json")  # what overwrite clears
SKIPPED_KEY = b"vrexp.skipped"  # a part's skipped records, in its schema metadata


class PartsError(RuntimeError):
    """A parts folder that holds an item twice, items of another list, or too few items."""


def part_path(parts_dir: Path, first_key: int) -> Path:
    return parts_dir / f"part-{first_key:08d}.parquet"


def part_skipped(path: Path) -> list[dict[str, Any]]:
    """The skipped records a part holds."""
    metadata = pq.read_schema(path).metadata or {}
    return json.loads(metadata.get(SKIPPED_KEY, b"[]"))


def present_keys(
    parts_dir: Path, key_column: str, error: type[Exception] = PartsError
) -> dict[Any, Path]:
    """Every item key the parts of ``parts_dir`` hold (as rows or skipped records) -> its part;
    an item in two parts is an error naming both."""
    found: dict[Any, Path] = {}
    for path in sorted(Path(parts_dir).glob(PART_GLOB)):
        column = pq.read_table(path, columns=[key_column]).column(key_column).to_pylist()
        keys = set(column) | {entry[key_column] for entry in part_skipped(path)}
        for key in sorted(keys):
            if key in found:
                raise error(
                    f"{parts_dir}: {key_column} {key} is in two parts, {found[key].name} and "
                    f"{path.name}; the folder was not written by one job (start afresh with "
                    "task.overwrite=true)"
                )
            found[key] = path
    return found


def write_parts(
    parts_dir: Path,
    items: Sequence[K],
    chunk_size: int,
    build: Callable[[Sequence[K]], tuple[pa.Table, list[dict[str, Any]]]],
    progress: Callable[[int], None] | None = None,
    *,
    key: Callable[[K], int] = attrgetter("item_id"),
    key_column: str = "item_id",
    skipped_file: str | None = SKIPPED_FILE,
    error: type[Exception] = PartsError,
) -> list[dict[str, Any]]:
    """Write a part for each chunk of the ``items`` that no part holds yet (``build`` turns a
    chunk into its table, whose ``key_column`` holds ``key(item)``, and its skipped records);
    then gather every skipped record into ``skipped_file`` (when given) and return them.
    ``progress(n)`` is told how many items are done, first those found, then chunk by chunk."""
    parts_dir = Path(parts_dir)
    parts_dir.mkdir(parents=True, exist_ok=True)
    keys = [key(item) for item in items]
    if len(set(keys)) != len(keys):
        twice = sorted(k for k, n in Counter(keys).items() if n > 1)[:5]
        raise error(f"the item list names {key_column} {twice} more than once")
    present = present_keys(parts_dir, key_column, error)
    foreign = sorted(set(present) - set(keys))
    if foreign:
        raise error(
            f"{parts_dir} holds {key_column} {foreign[:5]} that this job's items do not have "
            f"(in {present[foreign[0]].name}); start afresh with task.overwrite=true"
        )
    todo = [item for item, k in zip(items, keys, strict=True) if k not in present]
    if progress is not None and len(todo) < len(items):
        progress(len(items) - len(todo))
    for start in range(0, len(todo), chunk_size):
        chunk = todo[start : start + chunk_size]
        table, skipped = build(chunk)
        metadata = {**(table.schema.metadata or {}), SKIPPED_KEY: json.dumps(skipped).encode()}
        table = table.replace_schema_metadata(metadata)
        atomic_write(part_path(parts_dir, key(chunk[0])), lambda p, t=table: pq.write_table(t, p))
        if progress is not None:
            progress(len(chunk))
    return gather_skipped(parts_dir, key_column, skipped_file)


def gather_skipped(
    parts_dir: Path, key_column: str = "item_id", skipped_file: str | None = SKIPPED_FILE
) -> list[dict[str, Any]]:
    """Every skipped record of the parts of ``parts_dir``, by item; written to ``skipped_file``
    when given."""
    skipped = sorted(
        (entry for path in Path(parts_dir).glob(PART_GLOB) for entry in part_skipped(path)),
        key=lambda entry: entry[key_column],
    )
    if skipped_file is not None:
        atomic_write(
            Path(parts_dir) / skipped_file, lambda p: p.write_text(json.dumps(skipped, indent=2))
        )
    return skipped


def read_parts(
    folder: str | Path,
    key_column: str,
    sort_by: Sequence[str],
    *,
    error: type[Exception] = PartsError,
    parts_dir: str | Path | None = None,
) -> pa.Table | None:
    """Every row of the parts of ``folder`` (or of ``parts_dir`` in it), sorted by ``sort_by``;
    None when there is no part. An item in two parts is an error; so is a folder whose manifest
    records more items (``items.count``) than its parts hold: an interrupted job, which its rerun
    finishes; so is a folder of shards that are not merged (:mod:`vrexp.data.shards`)."""
    folder = Path(folder)
    parts_dir = Path(parts_dir) if parts_dir is not None else folder
    present = present_keys(parts_dir, key_column, error)
    paths = sorted(parts_dir.glob(PART_GLOB))
    if not paths:
        from vrexp.data.shards import require_merged  # shards builds on this module

        require_merged(folder, key_column, error)
        return None
    expected = ((read_manifest(folder) or {}).get("items") or {}).get("count")
    if expected is not None and len(present) != expected:
        raise error(
            f"{folder} holds {len(present)} of the {expected} items its job was given: the job "
            "was interrupted; rerun it with the same settings to finish it"
        )
    table = pa.concat_tables([pq.read_table(p) for p in paths])
    metadata = {k: v for k, v in (table.schema.metadata or {}).items() if k != SKIPPED_KEY}
    table = table.replace_schema_metadata(metadata or None)
    return table.sort_by([(column, "ascending") for column in sort_by])


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
