"""What every benchmark loader yields, and the checks and readers they share.

A loader opens a local snapshot of a benchmark's repository, checks its schema at once (the
files it expects, their columns and types), and then yields the benchmark's items lazily, one
pair (:class:`BenchmarkPair`) or one ranked list (:class:`BenchmarkList`) at a time. Media stay
where they are: an item holds references (:class:`FileMedia`, a path on disk;
:class:`ParquetMedia`, a cell of a parquet file whose bytes are read and decoded only when asked;
:class:`ZipMedia` / :class:`TarMedia`, a member of an archive), never pixels; each one's ``as_file()`` gives a
path for readers that take one. A row that cannot be used (an unknown label, a missing media
file) is an error naming the file and row, or with ``skip_invalid`` a :class:`Skip` recorded in
:attr:`Benchmark.skipped`; schema problems are always errors.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import math
import re
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal
from urllib.parse import urlparse

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image, UnidentifiedImageError

from vrexp.configs.choices import BenchmarkName, Media
from vrexp.media import image_to_rgb, load_media

log = logging.getLogger(__name__)

__all__ = [
    "Benchmark",
    "BenchmarkError",
    "BenchmarkItem",
    "BenchmarkList",
    "BenchmarkPair",
    "FileMedia",
    "MediaRef",
    "ParquetMedia",
    "RowError",
    "Skip",
    "TarMedia",
    "ZipMedia",
]


class BenchmarkError(ValueError):
    """A benchmark snapshot that cannot be read as published; the message names the file (and
    the row, for a row's problem)."""


class RowError(BenchmarkError):
    """One row's problem (an unknown label, a missing media file): skippable with
    ``skip_invalid``."""

    def __init__(self, source: Path | str, row: int, reason: str) -> None:
        super().__init__(f"{source} row {row}: {reason}")
        self.source, self.row, self.reason = str(source), row, reason


# ----------------------------------------------------------------------------- media references


@dataclass(frozen=True)
class FileMedia:
    """A media file on disk."""

    path: Path

    def read_bytes(self) -> bytes:
        return self.path.read_bytes()

    def load(self) -> np.ndarray:
        """Every pixel (:func:`vrexp.media.load_media`): [H, W, 3] or [T, H, W, 3] uint8."""
        return load_media(self.path)

    @contextlib.contextmanager
    def as_file(self) -> Iterator[Path]:
        """The media as a file on disk, for readers that take a path (here: the file itself)."""
        yield self.path


@functools.lru_cache(maxsize=8)
def _row_group_starts(file: str) -> tuple[int, ...]:
    """The first row of every row group of ``file``, and its row count last."""
    meta = pq.ParquetFile(file).metadata
    starts = [0]
    for g in range(meta.num_row_groups):
        starts.append(starts[-1] + meta.row_group(g).num_rows)
    return tuple(starts)


# One row group of each of a pair's two media columns at a time: reading items in order reads each
# group once (A and B alternating included), and memory stays two row groups' bytes, whatever the
# split's size.
@functools.lru_cache(maxsize=2)
def _row_group_column(file: str, group: int, column: str) -> pa.Array:
    table = pq.ParquetFile(file).read_row_group(group, columns=[column])
    return table.column(column).combine_chunks()


@dataclass(frozen=True)
class ParquetMedia:
    """An image embedded in a parquet file: ``column`` of ``row`` (counted from 0 in ``file``),
    either raw bytes or the Hugging Face image struct (``bytes``, ``path``). Nothing is read until
    :meth:`read_bytes` or :meth:`load`."""

    file: Path
    row: int
    column: str

    def read_bytes(self) -> bytes:
        starts = _row_group_starts(str(self.file))
        if not 0 <= self.row < starts[-1]:
            raise BenchmarkError(f"{self.file}: no row {self.row} (it has {starts[-1]})")
        group = int(np.searchsorted(starts, self.row, side="right")) - 1
        cell = _row_group_column(str(self.file), group, self.column)[self.row - starts[group]]
        value = cell.as_py()
        if isinstance(value, dict):
            value = value.get("bytes")
        if not isinstance(value, bytes) or not value:
            raise RowError(self.file, self.row, f"column {self.column!r} holds no image bytes")
        return value

    def load(self) -> np.ndarray:
        """The decoded image, uint8 [H, W, 3] (:func:`vrexp.media.image_to_rgb`)."""
        data = self.read_bytes()
        try:
            with Image.open(io.BytesIO(data)) as image:
                return image_to_rgb(image)
        except (UnidentifiedImageError, OSError) as err:
            raise RowError(
                self.file, self.row, f"column {self.column!r} is not a readable image: {err}"
            ) from None

    @contextlib.contextmanager
    def as_file(self) -> Iterator[Path]:
        """The image's bytes in a temporary file (removed on exit), for readers that take a path."""
        with _temporary(f"row{self.row}.img") as path:
            path.write_bytes(self.read_bytes())
            yield path


# The open archives (a zip's central directory is read once, not per member).
@functools.lru_cache(maxsize=2)
def _archive(file: str) -> zipfile.ZipFile:
    return zipfile.ZipFile(file)


def zip_members(file: Path) -> frozenset[str]:
    """The member names of the zip archive ``file``."""
    try:
        return frozenset(_archive(str(file)).namelist())
    except (OSError, zipfile.BadZipFile) as err:
        raise BenchmarkError(f"cannot read the zip archive {file}: {err}") from None


@dataclass(frozen=True)
class ZipMedia:
    """A media file inside a zip archive the benchmark ships (read without extracting it all)."""

    archive: Path
    member: str

    def read_bytes(self) -> bytes:
        return _archive(str(self.archive)).read(self.member)

    @contextlib.contextmanager
    def as_file(self) -> Iterator[Path]:
        """The member extracted to a temporary file (removed on exit)."""
        with _temporary(PurePosixPath(self.member).name) as path:
            with _archive(str(self.archive)).open(self.member) as src, path.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            yield path

    def load(self) -> np.ndarray:
        """Every pixel of the member (:func:`vrexp.media.load_media` on its extracted copy)."""
        with self.as_file() as path:
            return load_media(path)


# An open tar archive and its file members by name: listing them reads a compressed archive once;
# members read in the archive's order then stream, out of order a gzip stream re-reads from its
# start (docs/benchmarks.md §5.1).
@functools.lru_cache(maxsize=2)
def _tar(file: str) -> tuple[tarfile.TarFile, dict[str, tarfile.TarInfo]]:
    archive = tarfile.open(file, "r:*")  # noqa: SIM115 (kept open by the cache, like _archive)
    return archive, {m.name: m for m in archive.getmembers() if m.isfile()}


def tar_members(file: Path) -> frozenset[str]:
    """The file members' names of the tar archive ``file`` (compressed or not)."""
    try:
        return frozenset(_tar(str(file))[1])
    except (OSError, tarfile.TarError, EOFError) as err:
        raise BenchmarkError(f"cannot read the tar archive {file}: {err}") from None


@dataclass(frozen=True)
class TarMedia:
    """A media file inside a tar archive the benchmark ships (``.tar``, ``.tar.gz``), read
    without extracting the archive."""

    archive: Path
    member: str

    def read_bytes(self) -> bytes:
        archive, members = _tar(str(self.archive))
        handle = archive.extractfile(members[self.member])
        if handle is None:  # not a regular file: members holds only those
            raise BenchmarkError(f"{self.archive}: member {self.member!r} is not a file")
        with handle:
            return handle.read()

    @contextlib.contextmanager
    def as_file(self) -> Iterator[Path]:
        """The member extracted to a temporary file (removed on exit)."""
        with _temporary(PurePosixPath(self.member).name) as path:
            path.write_bytes(self.read_bytes())
            yield path

    def load(self) -> np.ndarray:
        """Every pixel of the member (:func:`vrexp.media.load_media` on its extracted copy)."""
        with self.as_file() as path:
            return load_media(path)


@contextlib.contextmanager
def _temporary(name: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="vrexp-media-") as folder:
        yield Path(folder) / name


MediaRef = FileMedia | ParquetMedia | ZipMedia | TarMedia


# ----------------------------------------------------------------------------- items


@dataclass(frozen=True)
class BenchmarkPair:
    """One human-judged pair. ``label`` is +1 (A preferred), -1 (B preferred) or 0 (human tie),
    the encoding of :mod:`vrexp.metrics.protocols`; ``labels`` holds every label column of a
    benchmark with several (VideoGen-RewardBench: Overall, VQ, MQ, TA) in the same encoding.
    ``key_a`` / ``key_b`` are the scores-file keys of the two media. ``row`` counts the split's
    rows from 0 across its files; ``source`` is the file the row is in."""

    row: int
    source: Path
    prompt: str
    media_a: MediaRef
    media_b: MediaRef
    key_a: str
    key_b: str
    label: int
    labels: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class BenchmarkList:
    """One human-ranked list of images for a prompt. ``ranks`` are the human ranks (lower is
    better, equal is a human tie); ``group`` is the list's index in the benchmark's file (the
    protocols' ``group``, since two lists may share a prompt); ``keys`` the scores-file keys."""

    group: int
    source: Path
    prompt: str
    media: tuple[MediaRef, ...]
    keys: tuple[str, ...]
    ranks: tuple[int, ...]


BenchmarkItem = BenchmarkPair | BenchmarkList


@dataclass(frozen=True)
class Skip:
    """A row left out under ``skip_invalid``, and why."""

    source: str
    row: int
    reason: str


@dataclass
class Benchmark:
    """A benchmark split ready to iterate: its items are read lazily, in file order.

    ``form`` is the protocols' input form (``pairs`` or ``ranked``); ``protocols`` the names of
    the benchmark's official protocols (members of :class:`vrexp.metrics.protocols.Protocol`),
    the first being its headline number. ``revision`` is the dataset commit (the pinned one, or
    the one the snapshot records; None: unknown). ``skipped`` lists the rows left out by the
    latest iteration (complete once it ends); without ``skip_invalid`` a bad row raises instead.
    """

    name: BenchmarkName
    split: str
    form: Literal["pairs", "ranked"]
    media: Media
    protocols: tuple[str, ...]
    revision: str | None
    files: tuple[Path, ...]
    rows: Callable[[], Iterator[BenchmarkItem | RowError]]
    skip_invalid: bool = False
    label: str | None = None
    skipped: list[Skip] = field(default_factory=list)

    def __iter__(self) -> Iterator[BenchmarkItem]:
        self.skipped = []
        for item in self.rows():
            if isinstance(item, RowError):
                if not self.skip_invalid:
                    raise item
                log.warning(
                    "%s: skipped %s row %d: %s", self.name, item.source, item.row, item.reason
                )
                self.skipped.append(Skip(item.source, item.row, item.reason))
                continue
            yield item

    def protocol_inputs(
        self, scores: Mapping[str, float], *, label: str | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The split in the protocols' input form, scored by ``scores`` (scores-file key ->
        score): ``(score_a, score_b, label)`` for pairs, ``(score, rank, group)`` for ranked
        lists. ``label`` picks another label column (VideoGen-RewardBench's VQ, MQ, TA). A key
        without a score is an error naming it (and how many more are missing)."""
        if label is not None and self.form != "pairs":
            raise BenchmarkError(f"{self.name} has ranked lists, not pair labels like {label!r}")
        columns: tuple[list, list, list] = ([], [], [])
        missing: list[str] = []

        def score(key: str) -> float:
            if key not in scores:
                missing.append(key)
                return math.nan
            return float(scores[key])

        for item in self:
            if isinstance(item, BenchmarkPair):
                if label is not None and label not in item.labels:
                    raise BenchmarkError(
                        f"{self.name} has no label {label!r}; its labels: {sorted(item.labels)}"
                    )
                columns[0].append(score(item.key_a))
                columns[1].append(score(item.key_b))
                columns[2].append(item.label if label is None else item.labels[label])
            else:
                for key, rank in zip(item.keys, item.ranks, strict=True):
                    columns[0].append(score(key))
                    columns[1].append(rank)
                    columns[2].append(item.group)
        if missing:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            raise BenchmarkError(
                f"{self.name} {self.split}: no score for media {missing[0]!r}{more}"
            )
        return (
            np.asarray(columns[0], dtype=np.float64),
            np.asarray(columns[1], dtype=np.float64 if self.form == "pairs" else np.int64),
            np.asarray(columns[2], dtype=np.int64),
        )

    def keys(self) -> Iterator[str]:
        """Every scores-file key the split needs, each once, in item order."""
        seen: set[str] = set()
        for item in self:
            for key in (item.key_a, item.key_b) if isinstance(item, BenchmarkPair) else item.keys:
                if key not in seen:
                    seen.add(key)
                    yield key


# ----------------------------------------------------------------------------- shared readers


def require_dir(root: str | Path, what: str) -> Path:
    path = Path(root).expanduser()
    if not path.is_dir():
        raise BenchmarkError(f"{what}: no such folder {path}")
    return path


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        listing = sorted(p.name for p in path.parent.iterdir()) if path.parent.is_dir() else []
        raise BenchmarkError(
            f"{what}: expected {path} (the published layout); found beside it: {listing[:20]}"
        )
    return path


def shards(folder: Path, split: str, what: str) -> list[Path]:
    """``folder/<split>-NNNNN-of-NNNNN[-hash].parquet`` in order, the Hugging Face shard naming
    (matched exactly, so ``test`` does not pick up ``test_unique``'s shards)."""
    pattern = re.compile(rf"{re.escape(split)}-\d+-of-\d+(-[0-9a-f]+)?\.parquet")
    found = sorted(p for p in folder.glob("*.parquet") if pattern.fullmatch(p.name))
    if not found:
        listing = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        raise BenchmarkError(
            f"{what}: no parquet shards {folder}/{split}-*.parquet for split {split!r}; "
            f"found: {listing[:20]}"
        )
    return found


def check_columns(
    file: Path, schema: pa.Schema, expected: dict[str, Callable[[pa.DataType], bool]]
) -> None:
    """Each ``expected`` column is present with a type its predicate accepts; else an error
    naming the file, the column and what was found (a missing column, or an unknown revision
    of the schema)."""
    for name, accepts in expected.items():
        index = schema.get_field_index(name)
        if index < 0:
            raise BenchmarkError(
                f"{file}: missing column {name!r} (columns: {schema.names}); "
                "not the published schema, or an unknown revision of it"
            )
        kind = schema.field(index).type
        if not accepts(kind):
            raise BenchmarkError(
                f"{file}: column {name!r} has type {kind}, not the published schema's; "
                "an unknown revision of the dataset?"
            )


def is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def is_image_bytes(kind: pa.DataType) -> bool:
    """Raw binary, or the Hugging Face image struct with a binary ``bytes`` field."""
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return True
    if pa.types.is_struct(kind):
        index = kind.get_field_index("bytes")
        return index >= 0 and (
            pa.types.is_binary(kind.field(index).type)
            or pa.types.is_large_binary(kind.field(index).type)
        )
    return False


def null_media_rows(file: Path, columns: Sequence[str]) -> dict[int, str]:
    """Rows of ``file`` (counted from 0) whose image in one of ``columns`` is null, with the
    first such column. The row groups' statistics say where nulls are, so only a row group that
    reports some is read (a file written without statistics is not checked here: a null image
    is then an error when it is decoded)."""
    parquet = pq.ParquetFile(file)
    meta = parquet.metadata
    leaves = {}
    for i in range(meta.num_columns):
        path = meta.schema.column(i).path
        for column in columns:
            if path in (column, f"{column}.bytes"):
                leaves[column] = i
    bad: dict[int, str] = {}
    start = 0
    for group in range(meta.num_row_groups):
        row_group = meta.row_group(group)
        for column, leaf in leaves.items():
            stats = row_group.column(leaf).statistics
            if stats is None or not stats.has_null_count or stats.null_count == 0:
                continue
            values = parquet.read_row_group(group, columns=[column]).column(column)
            null = pc.is_null(values)
            if pa.types.is_struct(values.type):
                null = pc.or_(null, pc.is_null(pc.struct_field(values, "bytes")))
            for offset, is_null in enumerate(null.to_pylist()):
                if is_null:
                    bad.setdefault(start + offset, column)
        start += row_group.num_rows
    return bad


def iter_parquet_rows(
    files: Sequence[Path], columns: list[str]
) -> Iterator[tuple[Path, int, dict]]:
    """``(file, row in file, values)`` of every row, reading only ``columns`` (no media bytes)."""
    for file in files:
        row = 0
        for batch in pq.ParquetFile(file).iter_batches(batch_size=1024, columns=columns):
            for values in batch.to_pylist():
                yield file, row, values
                row += 1


def media_file(base: Path, written: str, *, by_name: bool = False) -> Path | None:
    """The file a benchmark's media path (or URL) names under ``base``: ``base/written`` as
    written; with ``by_name``, else ``base/<file name>`` (the benchmarks whose own code joins
    media by file name). None when neither exists."""
    parsed = urlparse(written)
    candidates = []
    if not parsed.scheme or len(parsed.scheme) == 1:  # a path (a Windows drive letter is one too)
        candidates.append(base / written)
    if by_name:
        candidates.append(base / PurePosixPath(parsed.path or written).name)
    for path in candidates:
        if path.is_file():
            return path
    return None


def missing_media(base: Path, written: str, *, by_name: bool = False) -> str:
    """The reason recorded for a media path that :func:`media_file` did not find."""
    where = f"{base / written}" if "://" not in written else f"under {base}"
    also = (
        f" (nor {base / PurePosixPath(urlparse(written).path or written).name})" if by_name else ""
    )
    return f"media file {written!r} not found: {where}{also}"


def snapshot_revision(root: Path) -> str | None:
    """The commit a Hugging Face download of ``root`` records, when it records one: the
    ``snapshots/<commit>`` folder of the hub cache, or the first line of the ``*.metadata`` files
    that ``snapshot_download(local_dir=...)`` writes under ``.cache/huggingface/download``."""
    resolved = root.resolve()
    if resolved.parent.name == "snapshots" and _is_commit(resolved.name):
        return resolved.name
    download = root / ".cache" / "huggingface" / "download"
    if download.is_dir():
        commits = set()
        for meta in download.rglob("*.metadata"):
            first = meta.read_text(errors="replace").splitlines()[:1]
            if first and _is_commit(first[0].strip()):
                commits.add(first[0].strip())
        if len(commits) == 1:
            return commits.pop()
        if len(commits) > 1:
            raise BenchmarkError(
                f"{root}: its files come from {len(commits)} different commits "
                f"({sorted(commits)}); download one revision"
            )
    return None


def check_revision(root: Path, pinned: str | None) -> str | None:
    """The snapshot's revision: the pinned one, checked against what the snapshot records."""
    found = snapshot_revision(root)
    if pinned is not None and found is not None and found.lower() != pinned.lower():
        raise BenchmarkError(
            f"{root}: the snapshot is revision {found}, but the dataset option is pinned to "
            f"{pinned}; download that revision or set dataset.revision"
        )
    return pinned or found


def _is_commit(text: str) -> bool:
    return bool(re.fullmatch(r"[0-9a-fA-F]{40}", text))


# ----------------------------------------------------------------------------- ranked JSON lists


def read_json_list(file: Path, what: str) -> list:
    import json

    try:
        entries = json.loads(file.read_text())
    except (OSError, ValueError) as err:
        raise BenchmarkError(f"{what}: cannot read {file} as JSON: {err}") from None
    if not isinstance(entries, list):
        raise BenchmarkError(
            f"{what}: {file} must hold a JSON list of entries, got {type(entries).__name__}"
        )
    return entries


def ranked_lists(
    file: Path,
    entries: list,
    *,
    media_key: str,
    rank_key: str,
    base: Path,
    archived: Callable[[str], MediaRef | None] | None = None,
) -> Iterator[BenchmarkList | RowError]:
    """The ranked lists of a JSON list of ``{prompt, <media_key>: [paths], <rank_key>: [int]}``:
    each media path is a key as written, and a file under ``base`` (else, with ``archived``, the
    member it finds in the benchmark's archive). An entry without the keys is a schema error in
    the first entry (an unknown layout), a row error after it."""
    required = ("prompt", media_key, rank_key)
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or any(k not in entry for k in required):
            got = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
            reason = f"an entry needs keys {list(required)}, got {got}"
            if index == 0:
                raise BenchmarkError(f"{file} entry 0: {reason}; not the published layout")
            yield RowError(file, index, reason)
            continue
        prompt, paths, ranks = entry["prompt"], entry[media_key], entry[rank_key]
        if not isinstance(prompt, str):
            yield RowError(file, index, f"'prompt' must be text, got {prompt!r}")
            continue
        if not isinstance(paths, list) or not all(isinstance(p, str) and p for p in paths):
            yield RowError(file, index, f"{media_key!r} must be a list of paths, got {paths!r}")
            continue
        if (
            not isinstance(ranks, list)
            or not all(isinstance(r, int) and not isinstance(r, bool) for r in ranks)
            or len(ranks) != len(paths)
        ):
            yield RowError(
                file,
                index,
                f"{rank_key!r} must be one integer rank per image ({len(paths)}), got {ranks!r}",
            )
            continue
        if len(paths) < 2:
            yield RowError(file, index, f"a ranked list needs at least 2 images, got {len(paths)}")
            continue
        media, missing = [], None
        for written in paths:
            path = media_file(base, written)
            ref = FileMedia(path) if path is not None else archived and archived(written)
            if ref is None:
                missing = missing_media(base, written)
                break
            media.append(ref)
        if missing is not None:
            yield RowError(file, index, missing)
            continue
        yield BenchmarkList(index, file, prompt, tuple(media), tuple(paths), tuple(ranks))
