"""ImageRewardDB test as the official evaluation reads it (THUDM/ImageReward ``test.py``):
ranked lists of images per prompt.

Layout: ``data/test.json`` from the code repository, a list of ``{id, prompt, generations:
[paths], ranking: [int]}``, the ``generations`` paths relative to the root (or ``media_root``).
Lower ``ranking`` is better; equal rankings are a human tie. The scores-file key of an image is
its ``generations`` entry as written.
"""

from __future__ import annotations

from pathlib import Path

from vrexp.configs.choices import BenchmarkName, Media
from vrexp.data.benchmarks.base import (
    Benchmark,
    check_revision,
    ranked_lists,
    read_json_list,
    require_dir,
    require_file,
)

NAME = BenchmarkName.imagerewarddb_test
PROTOCOLS = ("imagereward",)


def load_imagerewarddb_test(
    root: str | Path,
    *,
    media_root: str | Path | None = None,
    split: str = "test",
    revision: str | None = None,
    skip_invalid: bool = False,
) -> Benchmark:
    """The ImageRewardDB test lists of ``root/data/test.json``; images under ``media_root``
    (default ``root``)."""
    root = require_dir(root, str(NAME))
    file = require_file(root / "data" / f"{split}.json", str(NAME))
    base = require_dir(media_root, f"{NAME} media_root") if media_root else root
    revision = check_revision(root, revision)
    entries = read_json_list(file, str(NAME))
    return Benchmark(
        name=NAME,
        split=split,
        form="ranked",
        media=Media.image,
        protocols=PROTOCOLS,
        revision=revision,
        files=(file,),
        rows=lambda: ranked_lists(
            file, entries, media_key="generations", rank_key="ranking", base=base
        ),
        skip_invalid=skip_invalid,
    )
