"""The evaluation benchmarks, each read from a local snapshot of its repository in its published
layout (one module per dataset family; docs/benchmarks.md §5).

:func:`load_benchmark` turns a ``dataset=<benchmark>`` config
(:class:`vrexp.configs.BenchmarkDatasetConfig`) into a :class:`Benchmark`: the split's pairs or
ranked lists, read lazily with their human labels in the protocols' encoding, media references
(decoded only when asked) and scores-file keys, plus the benchmark's official protocols.
No dataset scripts, no network. Scores files and items files (a reward's scores by key, and the
keys to score) are :mod:`vrexp.data.benchmarks.scores`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vrexp.configs.choices import BenchmarkName, Media
from vrexp.configs.dataset import BENCHMARK_LABELS, EMBEDDED_MEDIA
from vrexp.data.benchmarks.base import (
    Benchmark,
    BenchmarkError,
    BenchmarkItem,
    BenchmarkList,
    BenchmarkPair,
    FileMedia,
    MediaRef,
    ParquetMedia,
    RowError,
    Skip,
    TarMedia,
    ZipMedia,
)
from vrexp.data.benchmarks.genai_bench import load_genai_bench
from vrexp.data.benchmarks.hpdv2 import load_hpdv2_test
from vrexp.data.benchmarks.imagereward import load_imagerewarddb_test
from vrexp.data.benchmarks.monetbench import load_monetbench_video
from vrexp.data.benchmarks.pickapic import load_pickapic
from vrexp.data.benchmarks.videogen_rewardbench import load_videogen_rewardbench

__all__ = [
    "LOADERS",
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
    "load_benchmark",
    "load_genai_bench",
    "load_hpdv2_test",
    "load_imagerewarddb_test",
    "load_monetbench_video",
    "load_pickapic",
    "load_videogen_rewardbench",
]

# name -> loader(root, *, media_root, split, revision, skip_invalid); VideoGen-RewardBench also
# takes label.
LOADERS: dict[BenchmarkName, Callable[..., Benchmark]] = {
    BenchmarkName.hpdv2_test: load_hpdv2_test,
    BenchmarkName.imagerewarddb_test: load_imagerewarddb_test,
    BenchmarkName.pickapic_v1: functools.partial(load_pickapic, BenchmarkName.pickapic_v1),
    BenchmarkName.pickapic_v2: functools.partial(load_pickapic, BenchmarkName.pickapic_v2),
    BenchmarkName.genai_bench_image: functools.partial(load_genai_bench, Media.image),
    BenchmarkName.genai_bench_video: functools.partial(load_genai_bench, Media.video),
    BenchmarkName.videogen_rewardbench: load_videogen_rewardbench,
    BenchmarkName.monetbench_video: load_monetbench_video,
}


def load_benchmark(dataset: Any) -> Benchmark:
    """The benchmark split a ``dataset`` config names (a ``BenchmarkDatasetConfig``, or any
    object with its fields: ``name``, ``root``, ``media_root``, ``split``, ``label``,
    ``revision``, ``skip_invalid``)."""
    name = BenchmarkName(dataset.name)
    kwargs: dict[str, Any] = {
        "revision": dataset.revision,
        "skip_invalid": bool(dataset.skip_invalid),
    }
    if dataset.split is not None:
        kwargs["split"] = dataset.split
    if name in BENCHMARK_LABELS:
        kwargs["label"] = dataset.label
    elif dataset.label is not None:
        raise BenchmarkError(f"{name} has a single label; dataset.label must be null")
    if name in EMBEDDED_MEDIA:
        if dataset.media_root:
            raise BenchmarkError(
                f"{name} embeds its images in its parquet files; dataset.media_root must be null"
            )
    else:
        kwargs["media_root"] = Path(dataset.media_root) if dataset.media_root else None
    return LOADERS[name](Path(dataset.root), **kwargs)
