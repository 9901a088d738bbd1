"""Item listings for stages that read media: a SynthWorld split, or a user's folder of media.

A media folder has a prompts file (CSV, JSON lines or parquet) with a ``media`` column (paths
relative to the folder) and a ``prompt`` column. Malformed rows are reported with their row number.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from vrexp.checklist import Checklist
from vrexp.data.synthworld.split import ensure_split, read_items
from vrexp.media import MEDIA_SUFFIXES


class ItemsError(ValueError):
    """A prompts file or split that cannot be listed, naming the file and row."""


@dataclass(frozen=True)
class Item:
    item_id: int
    media_path: Path
    prompt: str


def read_table(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise ItemsError(f"prompts file not found: {path}")
    try:
        if path.suffix == ".parquet":
            return pq.read_table(path).to_pylist()
        if path.suffix in (".jsonl", ".json"):
            return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if path.suffix == ".csv":
            return pacsv.read_csv(path).to_pylist()
    except Exception as err:
        raise ItemsError(f"cannot read prompts file {path}: {err}") from err
    raise ItemsError(f"prompts file {path} must be .csv, .jsonl or .parquet")


def folder_items(root: str | Path, prompts_file: str | Path) -> list[Item]:
    """The rows of a prompts file; each ``media`` path is relative to ``root`` and must stay
    inside it (``../`` or an absolute path elsewhere is refused, naming the row)."""
    root, prompts_file = Path(root), Path(prompts_file)
    rows = read_table(prompts_file if prompts_file.is_absolute() else root / prompts_file)
    inside = root.resolve()
    items = []
    for number, row in enumerate(rows):
        media, prompt = row.get("media"), row.get("prompt")
        if not isinstance(media, str) or not media:
            raise ItemsError(f"{prompts_file} row {number}: 'media' must be a path, got {media!r}")
        if not isinstance(prompt, str):
            raise ItemsError(f"{prompts_file} row {number}: 'prompt' must be text, got {prompt!r}")
        path = root / media
        if not path.resolve().is_relative_to(inside):
            raise ItemsError(
                f"{prompts_file} row {number}: media {media!r} is outside the folder {root}"
            )
        items.append(Item(number, path, prompt))
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
    split_dir = Path(split_dir)
    table = read_items(split_dir)
    return [
        Item(int(i), split_dir / p, prompt)
        for i, p, prompt in zip(
            table.column("item_id").to_pylist(),
            table.column("media_path").to_pylist(),
            table.column("prompt").to_pylist(),
            strict=True,
        )
    ]


def dataset_items(dataset: Any, checklist: Checklist) -> list[Item]:
    """The items of a ``dataset`` config: a media folder's files, or a SynthWorld split's renders
    (rendered first when missing)."""
    if dataset.kind == "folder":
        return folder_items(dataset.root, dataset.prompts_file)
    return split_items(ensure_split(dataset, checklist))
