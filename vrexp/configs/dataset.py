"""Schemas of ``dataset/``: SynthWorld splits (with their prompt partition) and media folders."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

from vrexp.configs.checks import require
from vrexp.configs.choices import DatasetKind, Media


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
