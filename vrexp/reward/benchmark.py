"""A VisionReward scores a benchmark's media, each distinct key once, into the resumable table of
:mod:`vrexp.reward.scoring` (``task=benchmark``).

Media are read one item at a time where they are: a file on disk by its path (a video keeps its
timing for frame selection), an image embedded in a parquet file decoded from its bytes, a
member of a zip archive through a temporary copy. The scores come back keyed by the benchmark's
scores-file keys (:class:`vrexp.data.benchmarks.scores.KeyScores`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from vrexp.data.benchmarks import Benchmark, BenchmarkPair, FileMedia, MediaRef, ParquetMedia
from vrexp.data.benchmarks.scores import KeyScores
from vrexp.data.items import Item
from vrexp.reward.inputs import MediaInput
from vrexp.reward.scorer import VisionReward
from vrexp.reward.scoring import dimension_column, read_scores, score_items

__all__ = ["benchmark_media", "score_benchmark"]


def benchmark_media(benchmark: Benchmark) -> list[tuple[str, MediaRef, str]]:
    """``(key, media, prompt)`` of every distinct key of the split, in item order."""
    seen: dict[str, tuple[str, MediaRef, str]] = {}
    for item in benchmark:
        if isinstance(item, BenchmarkPair):
            pairs = ((item.key_a, item.media_a), (item.key_b, item.media_b))
        else:
            pairs = tuple(zip(item.keys, item.media, strict=True))
        for key, ref in pairs:
            seen.setdefault(key, (key, ref, item.prompt))
    return list(seen.values())


@contextlib.contextmanager
def _opened(ref: MediaRef) -> Iterator[MediaInput]:
    if isinstance(ref, FileMedia):
        yield ref.path
    elif isinstance(ref, ParquetMedia):
        yield ref.load()  # decoded from its bytes; no temporary file
    else:
        with ref.as_file() as path:
            yield path


def score_benchmark(
    reward: VisionReward,
    benchmark: Benchmark,
    out_dir: str | Path,
    *,
    chunk_size: int = 256,
    overwrite: bool = False,
    manifest: dict[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
) -> KeyScores:
    """Score every key of ``benchmark`` with ``reward`` into ``out_dir`` (resumable: a re-run
    scores only the missing parts); the total and each dimension's sub-score by key."""
    media = benchmark_media(benchmark)
    # media_path records the key (the table's own record of what was scored); media are opened
    # through their references.
    items = [Item(i, Path(key), prompt) for i, (key, _, prompt) in enumerate(media)]
    refs = [ref for _, ref, _ in media]
    score_items(
        reward,
        items,
        out_dir,
        chunk_size=chunk_size,
        manifest={
            "benchmark": str(benchmark.name),
            "split": benchmark.split,
            "revision": benchmark.revision,
            "keys": len(items),
            **(manifest or {}),
        },
        overwrite=overwrite,
        progress=progress,
        open_media=lambda item: _opened(refs[item.item_id]),
    )
    table, checklist = read_scores(out_dir)
    keys = [media[i][0] for i in table.column("item_id").to_pylist()]
    total = dict(zip(keys, table.column("total").to_pylist(), strict=True))
    dimensions = {
        name: dict(zip(keys, table.column(dimension_column(name)).to_pylist(), strict=True))
        for name in checklist.dimension_names
    }
    return KeyScores(total, dimensions)
