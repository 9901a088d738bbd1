"""ImageRewardDB test: ranked lists of images per prompt, in either of its two published layouts.

- The official evaluation's layout (THUDM/ImageReward ``test.py``): ``data/test.json`` from the
  code repository, a list of ``{id, prompt, generations: [paths], ranking: [int]}``, the
  ``generations`` paths relative to the root (or ``media_root``). The scores-file key of an image
  is its ``generations`` entry as written.
- The Hugging Face dataset's layout (``THUDM/ImageRewardDB``): ``metadata-<split>.parquet``, one
  row per image (``image_path``, ``prompt_id``, ``prompt``, ``image_amount_in_total``, ``rank``
  and the three ratings), beside ``images/<split>/<split>_<k>.zip`` archives that hold the images
  (lossless WebP) by file name. ``image_path`` is ``images/<split>/<split>_<k>/<name>.webp``: the
  archive is ``<split>_<k>.zip``, the member ``<name>.webp``. The rows of one ``prompt_id`` form
  one list; the key of an image is its ``image_path`` as written. Images already extracted to
  ``<root or media_root>/<image_path>`` are read from there instead.

The evaluation's file wins when a snapshot has both. Lower rank is better; equal ranks are a human
tie (the ``imagereward`` protocol skips them).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pyarrow as pa
import pyarrow.parquet as pq

from vrexp.configs.choices import BenchmarkName, Media
from vrexp.data.benchmarks.base import (
    Benchmark,
    BenchmarkError,
    BenchmarkList,
    FileMedia,
    RowError,
    ZipMedia,
    check_columns,
    check_revision,
    is_text,
    iter_parquet_rows,
    media_file,
    ranked_lists,
    read_json_list,
    require_dir,
    zip_members,
)

NAME = BenchmarkName.imagerewarddb_test
PROTOCOLS = ("imagereward",)

# The Hugging Face metadata columns a list needs (the ratings are read by no protocol).
METADATA_COLUMNS = {
    "image_path": is_text,
    "prompt_id": is_text,
    "prompt": is_text,
    "image_amount_in_total": pa.types.is_integer,
    "rank": pa.types.is_integer,
}


def load_imagerewarddb_test(
    root: str | Path,
    *,
    media_root: str | Path | None = None,
    split: str = "test",
    revision: str | None = None,
    skip_invalid: bool = False,
) -> Benchmark:
    """The ImageRewardDB lists of ``split``: from ``root/data/<split>.json`` (the official
    evaluation) or, without it, from ``root/metadata-<split>.parquet`` and its zip archives
    (the Hugging Face dataset); images under ``media_root`` (default ``root``)."""
    root = require_dir(root, str(NAME))
    base = require_dir(media_root, f"{NAME} media_root") if media_root else root
    revision = check_revision(root, revision)
    evaluation, metadata = root / "data" / f"{split}.json", root / f"metadata-{split}.parquet"
    if evaluation.is_file():
        entries = read_json_list(evaluation, str(NAME))
        files: tuple[Path, ...] = (evaluation,)

        def rows():
            return ranked_lists(
                evaluation, entries, media_key="generations", rank_key="ranking", base=base
            )
    elif metadata.is_file():
        check_columns(metadata, pq.read_schema(metadata), METADATA_COLUMNS)
        files = (metadata,)

        def rows():
            return _metadata_lists(root, base, metadata, split)
    else:
        listing = sorted(p.name for p in root.iterdir())
        raise BenchmarkError(
            f"{NAME}: expected {evaluation} (the official evaluation's file) or {metadata} "
            f"(the Hugging Face dataset's); found in {root}: {listing[:20]}"
        )
    return Benchmark(
        name=NAME,
        split=split,
        form="ranked",
        media=Media.image,
        protocols=PROTOCOLS,
        revision=revision,
        files=files,
        rows=rows,
        skip_invalid=skip_invalid,
    )


def _metadata_lists(
    root: Path, base: Path, metadata: Path, split: str
) -> Iterator[BenchmarkList | RowError]:
    """One list per ``prompt_id`` (in order of first appearance); a list whose size is not its
    ``image_amount_in_total``, or with an image found neither on disk nor in its archive, is a
    row error at the list's first row."""
    groups: dict[str, list[tuple[int, dict]]] = {}
    for _, row, values in iter_parquet_rows([metadata], list(METADATA_COLUMNS)):
        groups.setdefault(values["prompt_id"], []).append((row, values))
    archives = _Archives(root / "images" / split)
    for group, members in enumerate(groups.values()):
        first, head = members[0]
        expected = head["image_amount_in_total"]
        if expected != len(members):
            yield RowError(
                metadata,
                first,
                f"prompt_id {head['prompt_id']!r} has {len(members)} images but "
                f"image_amount_in_total={expected}",
            )
            continue
        media, problem = [], None
        for row, values in members:
            written = values["image_path"]
            ref = _image(base, archives, written)
            if ref is None:
                problem = (
                    f"row {row}: image {written!r} is neither at {base / written} nor in "
                    f"{archives.archive_of(written)}"
                )
                break
            media.append(ref)
        if problem is not None:
            yield RowError(metadata, first, problem)
            continue
        yield BenchmarkList(
            group,
            metadata,
            head["prompt"],
            tuple(media),
            tuple(v["image_path"] for _, v in members),
            tuple(int(v["rank"]) for _, v in members),
        )


def _image(base: Path, archives: _Archives, written: str) -> FileMedia | ZipMedia | None:
    path = media_file(base, written)
    if path is not None:
        return FileMedia(path)
    return archives.member(written)


class _Archives:
    """The split's zip archives, each one's members indexed by file name on first use."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._members: dict[Path, dict[str, str]] = {}

    def archive_of(self, written: str) -> Path:
        parts = PurePosixPath(written).parts
        shard = parts[-2] if len(parts) >= 2 else ""
        return self.folder / f"{shard}.zip"

    def member(self, written: str) -> ZipMedia | None:
        archive = self.archive_of(written)
        if archive not in self._members:
            by_name: dict[str, str] = {}
            if archive.is_file():
                for member in zip_members(archive):
                    name = PurePosixPath(member).name
                    if name in by_name and not member.endswith("/"):
                        raise BenchmarkError(
                            f"{archive}: two members named {name!r} ({by_name[name]!r}, "
                            f"{member!r}); not the published layout"
                        )
                    if not member.endswith("/"):
                        by_name[name] = member
            self._members[archive] = by_name
        member = self._members[archive].get(PurePosixPath(written).name)
        return None if member is None else ZipMedia(archive, member)
