"""GenAI-Bench, TIGER-Lab's pairwise votes (``TIGER-Lab/GenAI-Bench``): image and video pairs.

Layout: ``<config>/<split>-NNNNN-of-NNNNN.parquet`` for the configs ``image_generation`` and
``video_generation`` and the splits ``test_v1`` and ``test``. Columns ``prompt``, ``left_model``,
``right_model``, ``vote_type`` and, for images, ``left_image`` / ``right_image`` (embedded: the
Hugging Face image struct or raw bytes), for videos ``left_video`` / ``right_video`` (URL
strings). ``vote_type``: ``leftvote`` (+1), ``rightvote`` (-1), ``tievote`` and ``bothbad_vote``
(both a human tie, as reward-model papers count them); any other value is an unknown label.
Left is side A.

Scores-file keys: an image is ``<split>/<row index>/left|right`` (the row counted from 0 over the
split's shards); a video is its URL as written. A video file is found under ``media_root``
(default the root) by the URL's file name; two different URLs with one file name are refused.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import pyarrow.parquet as pq

from vrexp.configs.choices import BenchmarkName, Media
from vrexp.data.benchmarks.base import (
    Benchmark,
    BenchmarkError,
    BenchmarkPair,
    FileMedia,
    ParquetMedia,
    RowError,
    check_columns,
    check_revision,
    is_image_bytes,
    is_text,
    iter_parquet_rows,
    media_file,
    missing_media,
    null_media_rows,
    require_dir,
    shards,
)

PROTOCOLS = ("tau_star", "diff")
VOTES = {"leftvote": 1, "rightvote": -1, "tievote": 0, "bothbad_vote": 0}
CONFIGS = {Media.image: "image_generation", Media.video: "video_generation"}


def load_genai_bench(
    media: Media,
    root: str | Path,
    *,
    media_root: str | Path | None = None,
    split: str = "test_v1",
    revision: str | None = None,
    skip_invalid: bool = False,
) -> Benchmark:
    """Split ``split`` of GenAI-Bench's image or video generation votes in the snapshot ``root``."""
    name = (
        BenchmarkName.genai_bench_image if media is Media.image else BenchmarkName.genai_bench_video
    )
    root = require_dir(root, str(name))
    files = shards(root / CONFIGS[media], split, str(name))
    left, right = f"left_{media}", f"right_{media}"
    columns = {"prompt": is_text, "vote_type": is_text}
    columns |= (
        {left: is_image_bytes, right: is_image_bytes}
        if media is Media.image
        else {
            left: is_text,
            right: is_text,
        }
    )
    for file in files:
        check_columns(file, pq.read_schema(file), columns)
    base = require_dir(media_root, f"{name} media_root") if media_root else root
    revision = check_revision(root, revision)
    meta = ["prompt", "vote_type"] + ([left, right] if media is Media.video else [])

    def rows():
        names: dict[str, tuple[str, Path, int]] = {}  # file name -> (URL, file, row) seen
        nulls: dict[Path, dict[int, str]] = {}  # file -> its rows without image bytes
        for number, (file, row, values) in enumerate(iter_parquet_rows(files, meta)):
            vote = values["vote_type"]
            if vote not in VOTES:
                yield RowError(
                    file, row, f"unknown vote_type {vote!r} (expected one of {list(VOTES)})"
                )
                continue
            if media is Media.image:
                if file not in nulls:
                    nulls[file] = null_media_rows(file, (left, right))
                if row in nulls[file]:
                    yield RowError(file, row, f"column {nulls[file][row]!r} holds no image bytes")
                    continue
                refs = ParquetMedia(file, row, left), ParquetMedia(file, row, right)
                keys = f"{split}/{number}/left", f"{split}/{number}/right"
            else:
                keys = values[left], values[right]
                refs, problem = [], None
                for url in keys:
                    if not url:
                        problem = f"empty video URL in {left!r} / {right!r}"
                        break
                    path = media_file(base, url, by_name=True)
                    if path is None:
                        problem = missing_media(base, url, by_name=True)
                        break
                    file_name = PurePosixPath(urlparse(url).path or url).name
                    if path == base / file_name:  # found by name: two URLs must not share it
                        other = names.setdefault(file_name, (url, file, row))
                        if other[0] != url:
                            raise BenchmarkError(
                                f"{file} row {row}: video {url!r} and {other[1]} row "
                                f"{other[2]}'s {other[0]!r} share the file name "
                                f"{file_name!r}, so files under {base} cannot tell them apart"
                            )
                    refs.append(FileMedia(path))
                if problem is not None:
                    yield RowError(file, row, problem)
                    continue
            yield BenchmarkPair(
                row=number,
                source=file,
                prompt=values["prompt"] or "",
                media_a=refs[0],
                media_b=refs[1],
                key_a=keys[0],
                key_b=keys[1],
                label=VOTES[vote],
            )

    return Benchmark(
        name=name,
        split=split,
        form="pairs",
        media=media,
        protocols=PROTOCOLS,
        revision=revision,
        files=tuple(files),
        rows=rows,
        skip_invalid=skip_invalid,
    )
