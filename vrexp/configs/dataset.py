"""Schemas of ``dataset/``: SynthWorld splits (with their prompt partition), media folders and
local snapshots of the evaluation benchmarks (with each one's valid splits and labels)."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

from vrexp.configs.checks import ConfigValueError, require
from vrexp.configs.choices import BenchmarkName, DatasetKind, Media, VisionRewardDBName


@dataclass
class UtilityConfig:
    """SynthWorld's hidden human preference (see vrexp/data/synthworld/preference.py)."""

    weights: dict[str, float] = MISSING
    interaction: float = 0.8
    noise: float = 0.15

    def __post_init__(self) -> None:
        require(
            "dataset.utility",
            {"noise": self.noise >= 0, "weights": len(self.weights) >= 1},
            self,
        )


@dataclass
class PartitionConfig:
    """How a dataset's prompts split into train / val / test parts.

    A property of the dataset, not of a run: every stage (checklist training, weighting,
    evaluation) sees the same parts, and sweeping the model ``seed`` never changes the test set.
    """

    val_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        require(
            "dataset.partition",
            {
                "val_fraction": 0.0 <= self.val_fraction < 1.0,
                "test_fraction": 0.0 < self.test_fraction < 1.0,
                "val_fraction + test_fraction": self.val_fraction + self.test_fraction < 1.0,
            },
            self,
        )


@dataclass
class SynthWorldConfig:
    name: str = MISSING
    kind: DatasetKind = DatasetKind.synthworld
    media: Media = MISSING
    num_prompts: int = 200
    renders_per_prompt: int = 2  # candidates per prompt; every pair among them is judged
    image_size: int = 64
    num_frames: int = 8
    face_rate: float = 0.4
    level_concentration: float = 0.5  # higher: more neutral levels, fewer extremes
    tie_fraction: float = 0.2
    seed: int = 0  # the world's seed: prompts, plans and judgement noise
    chunk_size: int = 128  # prompts per written part (the unit of resume)
    out_dir: str = MISSING
    partition: PartitionConfig = field(default_factory=PartitionConfig)
    utility: UtilityConfig = field(default_factory=UtilityConfig)

    def __post_init__(self) -> None:
        require(
            "dataset",
            {
                "num_prompts": self.num_prompts >= 1,
                "renders_per_prompt": self.renders_per_prompt >= 2,
                "image_size": self.image_size >= 32,
                "num_frames": self.num_frames >= 6,
                "face_rate": 0.0 <= self.face_rate <= 1.0,
                "level_concentration": self.level_concentration >= 0,
                "tie_fraction": 0.0 <= self.tie_fraction < 1.0,
                "chunk_size": self.chunk_size >= 1,
            },
            self,
        )


@dataclass
class MediaFolderConfig:
    """A user's media: ``root`` holds the files and a prompts file with ``media`` and ``prompt``."""

    name: str = "media_folder"
    kind: DatasetKind = DatasetKind.folder
    media: Media = Media.image
    root: str = MISSING
    prompts_file: str = "prompts.csv"
    # A media path that leaves root (../x.png, /abs/path, a symlink out) is refused unless true.
    allow_outside_root: bool = False


# Each benchmark's splits, as its repository names them (the first is the default).
BENCHMARK_SPLITS: dict[BenchmarkName, tuple[str, ...]] = {
    BenchmarkName.hpdv2_test: ("test",),
    BenchmarkName.imagerewarddb_test: ("test", "validation"),  # validation: the HF layout only
    BenchmarkName.pickapic_v1: ("test_unique", "validation_unique", "test", "validation", "train"),
    BenchmarkName.pickapic_v2: ("test_unique", "validation_unique", "test", "validation", "train"),
    BenchmarkName.genai_bench_image: ("test_v1", "test"),
    BenchmarkName.genai_bench_video: ("test_v1", "test"),
    BenchmarkName.videogen_rewardbench: ("test",),
    BenchmarkName.monetbench_video: ("test",),
}
# Benchmarks with more than one human label per pair: the label columns (the first is the default).
BENCHMARK_LABELS: dict[BenchmarkName, tuple[str, ...]] = {
    BenchmarkName.videogen_rewardbench: ("Overall", "VQ", "MQ", "TA"),
}

# What each benchmark holds.
BENCHMARK_MEDIA: dict[BenchmarkName, Media] = {
    BenchmarkName.hpdv2_test: Media.image,
    BenchmarkName.imagerewarddb_test: Media.image,
    BenchmarkName.pickapic_v1: Media.image,
    BenchmarkName.pickapic_v2: Media.image,
    BenchmarkName.genai_bench_image: Media.image,
    BenchmarkName.genai_bench_video: Media.video,
    BenchmarkName.videogen_rewardbench: Media.video,
    BenchmarkName.monetbench_video: Media.video,
}
# Benchmarks whose images are bytes inside their parquet files (no media_root).
EMBEDDED_MEDIA = frozenset(
    {BenchmarkName.pickapic_v1, BenchmarkName.pickapic_v2, BenchmarkName.genai_bench_image}
)


@dataclass
class BenchmarkDatasetConfig:
    """A local snapshot of a benchmark's dataset repository, read in its published layout.

    ``root`` is the snapshot folder; ``media_root`` (default: the benchmark's own place under
    ``root``) is where its media files are, for benchmarks that ship paths rather than bytes.
    ``revision`` is the dataset commit the option is pinned to (``null``: unpinned, no verified
    commit known); a snapshot that records another commit is refused. ``skip_invalid`` turns a
    row's error (unknown label, missing media) into a recorded skip instead of a failure.
    """

    name: BenchmarkName = MISSING
    kind: DatasetKind = DatasetKind.benchmark
    media: Media = MISSING
    hf_id: str = MISSING
    revision: str | None = None
    root: str = MISSING
    media_root: str | None = None
    split: str | None = None  # None: the benchmark's first split (BENCHMARK_SPLITS)
    label: str | None = None  # None: the benchmark's first label column (BENCHMARK_LABELS)
    skip_invalid: bool = False

    def __post_init__(self) -> None:
        name = BenchmarkName(self.name)
        splits, labels = BENCHMARK_SPLITS[name], BENCHMARK_LABELS.get(name, ())
        if self.split is None:
            self.split = splits[0]
        if self.label is None and labels:
            self.label = labels[0]
        if self.split not in splits:
            raise ConfigValueError(
                f"dataset.split={self.split!r} is not a split of {name}; valid: {list(splits)}"
            )
        if self.label is not None and self.label not in labels:
            valid = f"valid: {list(labels)}" if labels else "it has a single label"
            raise ConfigValueError(
                f"dataset.label={self.label!r} is not a label of {name}; {valid}"
            )
        if Media(self.media) is not BENCHMARK_MEDIA[name]:
            raise ConfigValueError(
                f"dataset.media={Media(self.media).value!r}: {name} holds "
                f"{BENCHMARK_MEDIA[name]} media"
            )
        if self.media_root is not None and name in EMBEDDED_MEDIA:
            raise ConfigValueError(
                f"dataset.media_root={self.media_root!r}: {name} embeds its images in its "
                "parquet files; leave it null"
            )
        if self.revision is not None and not _is_commit(self.revision):
            raise ConfigValueError(
                f"dataset.revision={self.revision!r} must be a 40-hex-digit commit or null"
            )
        require("dataset", {"root": bool(self.root), "hf_id": bool(self.hf_id)}, self)


# VisionRewardDB: what each option holds and its splits (the first is the default). ``heldout`` is
# vrexp's deterministic held-out part of ``train`` (no official test split exists).
VISIONREWARDDB_MEDIA: dict[VisionRewardDBName, Media] = {
    VisionRewardDBName.visionrewarddb_image: Media.image,
    VisionRewardDBName.visionrewarddb_video: Media.video,
}
VISIONREWARDDB_SPLITS: dict[VisionRewardDBName, tuple[str, ...]] = {
    VisionRewardDBName.visionrewarddb_image: ("train", "heldout"),
    VisionRewardDBName.visionrewarddb_video: ("train", "heldout", "regression"),
}


@dataclass
class VisionRewardDBConfig:
    """A local snapshot of ``THUDM/VisionRewardDB-Image`` or ``-Video``, the checklist SFT data
    (``split=train``; ``heldout`` its held-out part) and, for video, the regression preference
    pairs (``split=regression``). Rows are assigned to parts by a hash of ``internal_id``:
    ``heldout_fraction`` of them are held out, ``val_fraction`` more are the validation part of
    checklist training, the rest train (docs/benchmarks.md §7). ``media_root`` (video only;
    default ``root``) is where the videos are. ``skip_invalid`` records a bad row as a skip
    instead of failing."""

    name: VisionRewardDBName = MISSING
    kind: DatasetKind = DatasetKind.visionrewarddb
    media: Media = MISSING
    hf_id: str = MISSING
    revision: str | None = None
    root: str = MISSING
    media_root: str | None = None
    split: str = "train"
    heldout_fraction: float = 0.05
    val_fraction: float = 0.05
    skip_invalid: bool = False

    def __post_init__(self) -> None:
        name = VisionRewardDBName(self.name)
        splits = VISIONREWARDDB_SPLITS[name]
        if self.split not in splits:
            raise ConfigValueError(
                f"dataset.split={self.split!r} is not a split of {name}; valid: {list(splits)}"
            )
        if Media(self.media) is not VISIONREWARDDB_MEDIA[name]:
            raise ConfigValueError(
                f"dataset.media={Media(self.media).value!r}: {name} holds "
                f"{VISIONREWARDDB_MEDIA[name]} media"
            )
        if self.media_root is not None and VISIONREWARDDB_MEDIA[name] is Media.image:
            raise ConfigValueError(
                f"dataset.media_root={self.media_root!r}: {name} embeds its images in its "
                "parquet files; leave it null"
            )
        if self.revision is not None and not _is_commit(self.revision):
            raise ConfigValueError(
                f"dataset.revision={self.revision!r} must be a 40-hex-digit commit or null"
            )
        require(
            "dataset",
            {
                "root": bool(self.root),
                "hf_id": bool(self.hf_id),
                "heldout_fraction": 0.0 <= self.heldout_fraction < 1.0,
                "val_fraction": 0.0 <= self.val_fraction < 1.0,
                "heldout_fraction + val_fraction": self.heldout_fraction + self.val_fraction < 1.0,
            },
            self,
        )


def _is_commit(text: str) -> bool:
    return len(text) == 40 and all(c in "0123456789abcdef" for c in text.lower())
