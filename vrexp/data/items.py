"""Item listings for stages that read media: a SynthWorld split, a user's folder of media, or a
VisionRewardDB split.

A media folder has a prompts file (CSV, JSON lines or parquet) with a ``media`` column (paths
relative to the folder) and a ``prompt`` column. Every cell is read as text (a prompt ``123`` is
the text "123"); a malformed row is reported with its line (CSV, JSON lines) or row (parquet), and
a file without rows is an error naming it.
"""

from __future__ import annotations

import contextlib
import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from vrexp.checklist import Checklist
from vrexp.data.synthworld.split import ensure_split, read_items
from vrexp.media import MEDIA_SUFFIXES

TABLE_SUFFIXES = (".csv", ".jsonl", ".json", ".parquet")


class ItemsError(ValueError):
    """A prompts file or split that cannot be listed, naming the file and row."""


@dataclass(frozen=True)
class Item:
    """One item to answer or score. ``media_ref``, when set, is where the media really are (an
    image embedded in a parquet file): read through its ``as_file()``, with ``media_path`` then
    only the item's name for its records."""

    item_id: int
    media_path: Path
    prompt: str
    media_ref: Any = field(default=None, compare=False)


@contextlib.contextmanager
def item_media(item: Item) -> Iterator[Path]:
    """A path to ``item``'s media while the context lasts (a temporary copy for a reference)."""
    if item.media_ref is None:
        yield item.media_path
    else:
        with item.media_ref.as_file() as path:
            yield path


def read_table(path: Path, columns: tuple[str, ...] = ()) -> list[tuple[str, dict[str, Any]]]:
    """The rows of a prompts file, each with where it is (``line 3`` or ``row 2``) for errors.

    ``columns`` must all be present; a file with no rows is an error."""
    if not path.is_file():
        raise ItemsError(f"prompts file not found: {path}")
    if path.suffix not in TABLE_SUFFIXES:
        raise ItemsError(f"prompts file {path} must be .csv, .jsonl or .parquet")
    try:
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            header = table.column_names
            rows = [(f"row {i + 1}", row) for i, row in enumerate(table.to_pylist())]
        elif path.suffix == ".csv":
            with path.open(newline="", encoding="utf-8-sig") as f:
                reader = csv.DictReader(f)
                header = list(reader.fieldnames or [])
                rows = [(f"line {reader.line_num}", row) for row in reader]
        else:
            header, rows = None, _json_lines(path)
    except ItemsError:
        raise
    except Exception as err:
        raise ItemsError(f"cannot read prompts file {path}: {err}") from err
    if not rows:
        raise ItemsError(f"prompts file {path} holds no rows (a header alone is not a list)")
    if header is not None:
        missing = [c for c in columns if c not in header]
        if missing:
            raise ItemsError(f"prompts file {path} has no {missing} column (columns: {header})")
    return rows


def _json_lines(path: Path) -> list[tuple[str, dict[str, Any]]]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            # Numbers stay the text they are written as: a prompt 123 is "123".
            row = json.loads(line, parse_int=str, parse_float=str)
        except json.JSONDecodeError as err:
            raise ItemsError(f"{path} line {number}: not JSON ({err.msg})") from err
        if not isinstance(row, dict):
            raise ItemsError(f"{path} line {number}: expected a JSON object, got {line.strip()!r}")
        rows.append((f"line {number}", row))
    return rows


def as_text(value: Any) -> Any:
    """A cell as text when it is a number written in a typed file (parquet), else unchanged."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def folder_items(
    root: str | Path, prompts_file: str | Path, *, allow_outside_root: bool = False
) -> list[Item]:
    """The rows of a prompts file; each ``media`` path is relative to ``root`` and must stay
    inside it (``../``, an absolute path or a symlink elsewhere is refused, naming the line)
    unless ``allow_outside_root``."""
    root, prompts_file = Path(root), Path(prompts_file)
    path = prompts_file if prompts_file.is_absolute() else root / prompts_file
    rows = read_table(path, columns=("media", "prompt"))
    inside = root.resolve()
    items = []
    for number, (where, row) in enumerate(rows):
        media, prompt = as_text(row.get("media")), as_text(row.get("prompt"))
        if not isinstance(media, str) or not media:
            raise ItemsError(f"{path} {where}: 'media' must be a path, got {media!r}")
        if not isinstance(prompt, str):
            raise ItemsError(f"{path} {where}: 'prompt' must be text, got {prompt!r}")
        media_path = root / media
        if not allow_outside_root and not media_path.resolve().is_relative_to(inside):
            raise ItemsError(
                f"{path} {where}: media {media!r} is outside the folder {root} (a path must stay "
                "inside it; set dataset.allow_outside_root=true, or task.allow_outside_root=true "
                "for task.list_file, to read it anyway)"
            )
        items.append(Item(number, media_path, prompt))
    return items


def media_files(path: str | Path) -> list[Path]:
    """A media file, or every media file under a folder (by suffix, recursively, sorted)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ItemsError(f"no such media file or folder: {path}")
    found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES)
    if not found:
        raise ItemsError(
            f"{path} holds no media files (suffixes read: {' '.join(sorted(MEDIA_SUFFIXES))})"
        )
    return found


def split_items(split_dir: str | Path) -> list[Item]:
    """The renders of a SynthWorld split; a media path that leaves the split (a tampered
    ``items`` table) is refused naming the item."""
    split_dir = Path(split_dir)
    table = read_items(split_dir)
    inside = split_dir.resolve()
    items = [
        Item(int(i), split_dir / p, prompt)
        for i, p, prompt in zip(
            table.column("item_id").to_pylist(),
            table.column("media_path").to_pylist(),
            table.column("prompt").to_pylist(),
            strict=True,
        )
    ]
    for item in items:
        if not item.media_path.resolve().is_relative_to(inside):
            raise ItemsError(
                f"split {split_dir} item {item.item_id}: media {item.media_path} is outside the split"
            )
    return items


def dataset_items(dataset: Any, checklist: Checklist) -> list[Item]:
    """The items of a ``dataset`` config: a media folder's files, a VisionRewardDB split's videos,
    or a SynthWorld split's renders (rendered first when missing)."""
    if dataset.kind == "visionrewarddb":
        from vrexp.data.visionrewarddb import visionrewarddb_items  # it imports this module

        return visionrewarddb_items(dataset, checklist)
    if dataset.kind == "folder":
        return folder_items(
            dataset.root, dataset.prompts_file, allow_outside_root=dataset.allow_outside_root
        )
    return split_items(ensure_split(dataset, checklist))
