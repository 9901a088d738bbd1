"""A reward's scores of a benchmark's media, keyed the benchmark's own way, and the files that
carry them (docs/benchmarks.md, ``task=benchmark``).

A **scores file** is parquet or CSV with columns ``media`` (the scores-file key of
:attr:`BenchmarkPair.key_a` / :attr:`BenchmarkList.keys`: the media path as the benchmark's
metadata writes it, or an image uid / ``<split>/<row>/left|right`` where images are bytes) and
``score``; optional ``dimension/<name>`` columns are the reward's per-dimension sub-scores. Each
key appears once; every score is a finite number. An **items file** (:func:`export_items`) lists
the keys a benchmark needs, with their prompt and where the media are, so a model outside vrexp
can score them; adding a ``score`` column to it makes a scores file.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from vrexp.configs.tasks import SCORES_SUFFIXES
from vrexp.data.atomic import atomic_write
from vrexp.data.benchmarks.base import Benchmark, BenchmarkError, BenchmarkPair, MediaRef

__all__ = [
    "DIMENSION_PREFIX",
    "ITEM_COLUMNS",
    "KeyScores",
    "ScoresFileError",
    "export_items",
    "read_scores_file",
    "scores_file_for",
]

DIMENSION_PREFIX = "dimension/"
# The items file's columns: the key, the split it belongs to, its prompt, the media file (empty
# where the media are bytes inside another file), and the file and row the item comes from.
ITEM_COLUMNS = ("media", "split", "prompt", "media_path", "source", "row")


class ScoresFileError(BenchmarkError):
    """A scores file that cannot be used: the message names the file, and the row or key."""


@dataclass(frozen=True)
class KeyScores:
    """Scores by key: ``total`` (the reward's score) and, for a reward with dimensions,
    ``dimensions`` (dimension name -> key -> sub-score)."""

    total: Mapping[str, float]
    dimensions: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def columns(self) -> dict[str, Mapping[str, float]]:
        """``{"total": ..., "<dimension>": ...}``, the total first."""
        return {"total": self.total, **self.dimensions}


def _suffix(path: Path, what: str) -> str:
    if path.suffix.lower() not in SCORES_SUFFIXES:
        raise ScoresFileError(f"{what} {path} must be .parquet or .csv, not {path.suffix!r}")
    return path.suffix.lower()


def _read_rows(path: Path) -> tuple[list[str], list[dict[str, Any]], str]:
    """The header, the rows and how rows are named in errors (``line`` or ``row``)."""
    try:
        if _suffix(path, "scores file") == ".parquet":
            table = pq.read_table(path)
            return table.column_names, table.to_pylist(), "row"
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            return list(reader.fieldnames or []), list(reader), "line"
    except ScoresFileError:
        raise
    except (OSError, ValueError, pa.ArrowException, csv.Error) as err:
        raise ScoresFileError(f"cannot read the scores file {path}: {err}") from None


def _number(value: Any, path: Path, where: str, column: str, key: str) -> float:
    try:
        number = float(value) if not isinstance(value, bool) and value not in (None, "") else None
    except (TypeError, ValueError):
        number = None
    if number is None or not math.isfinite(number):
        raise ScoresFileError(
            f"{path} {where} (media {key!r}): column {column!r} must be a finite number, "
            f"got {value!r}"
        )
    return number


def scores_file_for(path: str | Path, benchmark: str) -> Path:
    """The scores file ``path`` names for ``benchmark``: the file itself, or in a folder of
    scores files its ``<benchmark>.parquet`` or ``<benchmark>.csv`` (exactly one of them)."""
    path = Path(path)
    if not path.is_dir():
        return path
    found = [path / f"{benchmark}{suffix}" for suffix in SCORES_SUFFIXES]
    found = [f for f in found if f.is_file()]
    if len(found) != 1:
        names = " or ".join(f"{benchmark}{s}" for s in SCORES_SUFFIXES)
        problem = "both" if found else "neither"
        raise ScoresFileError(f"scores folder {path} must hold {names}; it holds {problem}")
    return found[0]


def read_scores_file(path: str | Path) -> KeyScores:
    """The scores of a scores file (format above); an error names the file and the row (or line)
    of a missing key, a duplicated key, a NaN or non-numeric score, or the missing column."""
    path = Path(path)
    if not path.is_file():
        raise ScoresFileError(f"scores file not found: {path}")
    header, rows, unit = _read_rows(path)
    missing = [c for c in ("media", "score") if c not in header]
    if missing:
        raise ScoresFileError(
            f"{path}: missing column(s) {missing}; a scores file has columns 'media' (the "
            f"benchmark's key) and 'score' (found: {header})"
        )
    if not rows:
        raise ScoresFileError(f"{path} has no rows")
    dims = [c for c in header if c.startswith(DIMENSION_PREFIX)]
    total: dict[str, float] = {}
    dimensions: dict[str, dict[str, float]] = {c[len(DIMENSION_PREFIX) :]: {} for c in dims}
    first: dict[str, str] = {}
    for index, row in enumerate(rows):
        # CSV: the header is line 1; parquet rows count from 0, as pyarrow's do.
        where = f"line {index + 2}" if unit == "line" else f"row {index}"
        key = row["media"]
        if key is None or (isinstance(key, str) and not key):
            raise ScoresFileError(f"{path} {where}: empty 'media' key")
        key = str(key)
        if key in first:
            raise ScoresFileError(
                f"{path} {where}: media {key!r} is duplicated (first at {first[key]}); "
                "each key needs exactly one score"
            )
        first[key] = where
        total[key] = _number(row["score"], path, where, "score", key)
        for column in dims:
            dimensions[column[len(DIMENSION_PREFIX) :]][key] = _number(
                row[column], path, where, column, key
            )
    return KeyScores(total, dimensions)


def _media_path(ref: MediaRef) -> str:
    path = getattr(ref, "path", None)
    return "" if path is None else str(path)


def _item_rows(benchmark: Benchmark) -> Iterable[dict[str, Any]]:
    for item in benchmark:
        if isinstance(item, BenchmarkPair):
            pairs = ((item.key_a, item.media_a), (item.key_b, item.media_b))
            row = item.row
        else:
            pairs = tuple(zip(item.keys, item.media, strict=True))
            row = item.group
        for key, ref in pairs:
            yield {
                "media": key,
                "split": benchmark.split,
                "prompt": item.prompt,
                "media_path": _media_path(ref),
                "source": str(item.source),
                "row": row,
            }


def export_items(benchmarks: Iterable[Benchmark], path: str | Path) -> int:
    """Write every key the ``benchmarks`` (one or more splits) need, each once, in item order,
    as an items file (columns :data:`ITEM_COLUMNS`), atomically; returns the number of keys."""
    path = Path(path)
    suffix = _suffix(path, "task.export_items")
    seen: set[str] = set()
    rows = []
    for benchmark in benchmarks:
        for row in _item_rows(benchmark):
            if row["media"] not in seen:
                seen.add(row["media"])
                rows.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        if suffix == ".parquet":
            columns = {c: [r[c] for r in rows] for c in ITEM_COLUMNS}
            schema = pa.schema(
                [(c, pa.int64() if c == "row" else pa.string()) for c in ITEM_COLUMNS]
            )
            pq.write_table(pa.table(columns, schema=schema), tmp)
        else:
            with tmp.open("w", newline="", encoding="utf-8") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(ITEM_COLUMNS))
                writer.writeheader()
                writer.writerows(rows)

    atomic_write(path, write)
    return len(rows)
