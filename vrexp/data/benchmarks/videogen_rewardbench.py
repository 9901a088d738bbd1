"""VideoGen-RewardBench (``KlingTeam/VideoGen-RewardBench``, formerly ``KwaiVGI/...``; protocols
from KwaiVGI/VideoAlign ``calc_accuracy.py``): pairs of videos with four human labels.

Layout: ``videogen-rewardbench.csv`` with columns ``path_A``, ``path_B``, ``A_model``,
``B_model``, ``prompt``, ``VQ``, ``MQ``, ``TA``, ``Overall`` (and fps / frame counts), and the
videos of ``videos.zip`` extracted beside it (``path_A`` / ``path_B`` are relative to the root, or
to ``media_root``), or read from ``videos.zip`` itself when a video is not extracted (a
:class:`ZipMedia` whose member is the path as written). Each label column holds ``A`` (+1),
``B`` (-1) or ``same`` (a human tie); any other value is an unknown label. ``label`` picks the
pair's label (``Overall`` by default); all four are in :attr:`BenchmarkPair.labels`. The
scores-file keys are ``path_A`` / ``path_B`` as written. Rows count data lines from 0 (row 0
is the CSV's second line).
"""

from __future__ import annotations

import csv
from pathlib import Path

from vrexp.configs.choices import BenchmarkName, Media
from vrexp.configs.dataset import BENCHMARK_LABELS
from vrexp.data.benchmarks.base import (
    Benchmark,
    BenchmarkError,
    BenchmarkPair,
    FileMedia,
    RowError,
    ZipMedia,
    check_revision,
    media_file,
    missing_media,
    require_dir,
    require_file,
    zip_members,
)

NAME = BenchmarkName.videogen_rewardbench
PROTOCOLS = ("tau_star_videoalign", "without_ties")
FILE = "videogen-rewardbench.csv"
ARCHIVE = "videos.zip"
LABEL_COLUMNS = BENCHMARK_LABELS[NAME]
VALUES = {"A": 1, "B": -1, "same": 0}
COLUMNS = ("path_A", "path_B", "prompt", *LABEL_COLUMNS)


def load_videogen_rewardbench(
    root: str | Path,
    *,
    media_root: str | Path | None = None,
    split: str = "test",
    label: str | None = None,
    revision: str | None = None,
    skip_invalid: bool = False,
) -> Benchmark:
    """The pairs of ``root/videogen-rewardbench.csv`` labelled by ``label`` (default Overall)."""
    label = label or LABEL_COLUMNS[0]
    if label not in LABEL_COLUMNS:
        raise BenchmarkError(f"{NAME}: label {label!r} is not one of {list(LABEL_COLUMNS)}")
    root = require_dir(root, str(NAME))
    file = require_file(root / FILE, str(NAME))
    with file.open(newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle), [])
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise BenchmarkError(
            f"{file}: missing column(s) {missing} (header: {header}); not the published schema, "
            "or an unknown revision of it"
        )
    base = require_dir(media_root, f"{NAME} media_root") if media_root else root
    archive = root / ARCHIVE
    members = zip_members(archive) if archive.is_file() else frozenset()
    revision = check_revision(root, revision)

    def rows():
        with file.open(newline="", encoding="utf-8-sig") as handle:
            for row, values in enumerate(csv.DictReader(handle)):
                unknown = {c: values[c] for c in LABEL_COLUMNS if values[c] not in VALUES}
                if unknown:
                    yield RowError(
                        file, row, f"unknown label value(s) {unknown} (expected {list(VALUES)})"
                    )
                    continue
                refs, problem = [], None
                for column in ("path_A", "path_B"):
                    written = values[column]
                    path = media_file(base, written) if written else None
                    if path is not None:
                        refs.append(FileMedia(path))
                    elif written in members:
                        refs.append(ZipMedia(archive, written))
                    else:
                        also = f", nor in {archive}" if members else ""
                        problem = f"{column}: " + missing_media(base, written) + also
                        break
                if problem is not None:
                    yield RowError(file, row, problem)
                    continue
                labels = {c: VALUES[values[c]] for c in LABEL_COLUMNS}
                yield BenchmarkPair(
                    row=row,
                    source=file,
                    prompt=values["prompt"],
                    media_a=refs[0],
                    media_b=refs[1],
                    key_a=values["path_A"],
                    key_b=values["path_B"],
                    label=labels[label],
                    labels=labels,
                )

    return Benchmark(
        name=NAME,
        split=split,
        form="pairs",
        media=Media.video,
        protocols=PROTOCOLS,
        revision=revision,
        files=(file,),
        rows=rows,
        skip_invalid=skip_invalid,
        label=label,
    )
