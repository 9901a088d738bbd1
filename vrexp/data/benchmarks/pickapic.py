"""Pick-a-Pic v1 and v2 (``yuvalkirstain/pickapic_v1`` / ``_v2``; protocol from
yuvalkirstain/PickScore): pairs of images with their JPEG bytes inside the parquet shards.

Layout: ``data/<split>-NNNNN-of-NNNNN.parquet`` with ``caption``, ``jpg_0``, ``jpg_1`` (bytes),
``label_0``, ``label_1`` (float), ``image_0_uid``, ``image_1_uid`` and more. ``label_0`` is 1 when
image 0 is preferred, 0 when image 1 is, 0.5 for a tie (with ``label_1 = 1 - label_0``); any other
value is an unknown label. Image 0 is side A. The scores-file key of an image is its uid.
Iterating reads no image bytes; each image is read and decoded when asked.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from vrexp.configs.choices import BenchmarkName, Media
from vrexp.data.benchmarks.base import (
    Benchmark,
    BenchmarkPair,
    ParquetMedia,
    RowError,
    check_columns,
    check_revision,
    is_image_bytes,
    is_text,
    iter_parquet_rows,
    null_media_rows,
    require_dir,
    shards,
)

PROTOCOLS = ("pickapic",)
LABELS = {1.0: 1, 0.0: -1, 0.5: 0}  # label_0 -> the protocols' label
COLUMNS = {
    "caption": is_text,
    "jpg_0": is_image_bytes,
    "jpg_1": is_image_bytes,
    "label_0": pa.types.is_floating,
    "label_1": pa.types.is_floating,
    "image_0_uid": is_text,
    "image_1_uid": is_text,
}
META = ["caption", "label_0", "label_1", "image_0_uid", "image_1_uid"]


def load_pickapic(
    name: BenchmarkName,
    root: str | Path,
    *,
    split: str = "test_unique",
    revision: str | None = None,
    skip_invalid: bool = False,
) -> Benchmark:
    """Split ``split`` of the Pick-a-Pic snapshot ``root`` (``name``: v1 or v2)."""
    root = require_dir(root, str(name))
    files = shards(root / "data", split, str(name))
    has_label = []
    for file in files:
        schema = pq.read_schema(file)
        check_columns(file, schema, COLUMNS)
        has_label.append("has_label" in schema.names)
    revision = check_revision(root, revision)
    columns = META + (["has_label"] if all(has_label) else [])

    def rows():
        nulls: dict[Path, dict[int, str]] = {}
        for number, (file, row, values) in enumerate(iter_parquet_rows(files, columns)):
            if file not in nulls:
                nulls[file] = null_media_rows(file, ("jpg_0", "jpg_1"))
            if row in nulls[file]:
                yield RowError(file, row, f"column {nulls[file][row]!r} holds no image bytes")
                continue
            label_0, label_1 = values["label_0"], values["label_1"]
            if values.get("has_label") is False:
                yield RowError(file, row, "has_label is false: the pair has no human label")
                continue
            if label_0 not in LABELS or label_1 is None or label_0 + label_1 != 1.0:
                yield RowError(
                    file,
                    row,
                    f"unknown label: label_0={label_0!r}, label_1={label_1!r} "
                    "(expected 1 / 0, 0 / 1 or 0.5 / 0.5)",
                )
                continue
            uid_0, uid_1 = values["image_0_uid"], values["image_1_uid"]
            if not uid_0 or not uid_1:
                yield RowError(file, row, f"an image uid is empty: {uid_0!r}, {uid_1!r}")
                continue
            yield BenchmarkPair(
                row=number,
                source=file,
                prompt=values["caption"] or "",
                media_a=ParquetMedia(file, row, "jpg_0"),
                media_b=ParquetMedia(file, row, "jpg_1"),
                key_a=uid_0,
                key_b=uid_1,
                label=LABELS[label_0],
            )

    return Benchmark(
        name=name,
        split=split,
        form="pairs",
        media=Media.image,
        protocols=PROTOCOLS,
        revision=revision,
        files=tuple(files),
        rows=rows,
        skip_invalid=skip_invalid,
    )
