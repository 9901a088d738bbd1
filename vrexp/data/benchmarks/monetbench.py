"""Video-MonetBench, the ``test`` config of VisionRewardDB-Video (``THUDM/VisionRewardDB-Video``,
also ``zai-org/...``): pairs of videos judged by humans.

Layout: ``test/*.parquet`` (an earlier revision: ``monetbench/*.parquet``) with columns
``internal_id``, ``prompt``, ``standard_answer``, ``video1_path``, ``video2_path``; no video
bytes. ``standard_answer`` is ``video1`` (+1), ``video2`` (-1) or ``tie`` (a human tie), the
values third-party evaluation code reads (the dataset card does not state them); any other value
is an unknown label. Video 1 is side A. A video is found under ``media_root`` (default the root)
at its path as written, else by its file name, as that code joins them. The scores-file keys are
``video1_path`` / ``video2_path`` as written.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from vrexp.configs.choices import BenchmarkName, Media
from vrexp.data.benchmarks.base import (
    Benchmark,
    BenchmarkError,
    BenchmarkPair,
    FileMedia,
    RowError,
    check_columns,
    check_revision,
    is_text,
    iter_parquet_rows,
    media_file,
    missing_media,
    require_dir,
)

NAME = BenchmarkName.monetbench_video
PROTOCOLS = ("tau_star", "diff")
ANSWERS = {"video1": 1, "video2": -1, "tie": 0}
FOLDERS = ("test", "monetbench")  # the config's folder, then its earlier name
COLUMNS = {
    "internal_id": lambda kind: True,
    "prompt": is_text,
    "standard_answer": is_text,
    "video1_path": is_text,
    "video2_path": is_text,
}


def load_monetbench_video(
    root: str | Path,
    *,
    media_root: str | Path | None = None,
    split: str = "test",
    revision: str | None = None,
    skip_invalid: bool = False,
) -> Benchmark:
    """The Video-MonetBench pairs of the VisionRewardDB-Video snapshot ``root``."""
    root = require_dir(root, str(NAME))
    files: list[Path] = []
    for folder in FOLDERS:
        files = sorted((root / folder).glob("*.parquet"))
        if files:
            break
    if not files:
        raise BenchmarkError(
            f"{NAME}: no parquet files in {root}/test/ (nor {root}/monetbench/, its earlier name)"
        )
    for file in files:
        check_columns(file, pq.read_schema(file), COLUMNS)
    base = require_dir(media_root, f"{NAME} media_root") if media_root else root
    revision = check_revision(root, revision)

    def rows():
        meta = ["prompt", "standard_answer", "video1_path", "video2_path"]
        for number, (file, row, values) in enumerate(iter_parquet_rows(files, meta)):
            answer = values["standard_answer"]
            if answer not in ANSWERS:
                yield RowError(
                    file,
                    row,
                    f"unknown standard_answer {answer!r} (expected one of {list(ANSWERS)})",
                )
                continue
            refs, problem = [], None
            for column in ("video1_path", "video2_path"):
                written = values[column]
                path = media_file(base, written, by_name=True) if written else None
                if path is None:
                    problem = f"{column}: " + missing_media(base, written or "", by_name=True)
                    break
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
                key_a=values["video1_path"],
                key_b=values["video2_path"],
                label=ANSWERS[answer],
            )

    return Benchmark(
        name=NAME,
        split=split,
        form="pairs",
        media=Media.video,
        protocols=PROTOCOLS,
        revision=revision,
        files=tuple(files),
        rows=rows,
        skip_invalid=skip_invalid,
    )
