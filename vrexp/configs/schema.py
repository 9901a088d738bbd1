"""Structured-config schemas for every config group, registered in Hydra's ConfigStore.

Each YAML option in ``conf/<group>/`` lists its schema first in its defaults list (``- base_<x>``),
so a misspelt key or a value of the wrong type fails at composition with a message naming the
key. Range checks that types cannot express live in ``__post_init__``, which runs when a task turns
its node into an object with ``OmegaConf.to_object``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


class Media(str, Enum):
    image = "image"
    video = "video"


# --------------------------------------------------------------------------- dimensions/
@dataclass
class QuestionSpec:
    text: str = MISSING
    id: int | None = None
    at_least: str | None = None  # option name of the boundary; inferred from order if omitted
    external: bool = False  # answered outside the checklist VLM (the image alignment item)


@dataclass
class PresenceSpec:
    text: str = MISSING
    id: int | None = None


@dataclass
class SubDimensionSpec:
    name: str = MISSING
    options: list[str] = MISSING  # best first
    questions: list[QuestionSpec] = MISSING
    key: str | None = None  # SynthWorld factor measured by the oracle
    presence: PresenceSpec | None = None
    absent: str | None = None  # the option that the presence question masks


@dataclass
class DimensionSpec:
    name: str = MISSING
    sub_dimensions: list[SubDimensionSpec] = MISSING


@dataclass
class ChecklistConfig:
    name: str = MISSING
    media: Media = MISSING
    drop: list[str] = field(default_factory=list)  # dimensions to leave out (ablations)
    hierarchy: list[DimensionSpec] = MISSING


# --------------------------------------------------------------------------- dataset/
@dataclass
class UtilityConfig:
    """SynthWorld's hidden human preference (see vrexp/data/synthworld/preference.py)."""

    weights: dict[str, float] = MISSING
    interaction: float = 0.8
    noise: float = 0.15

    def __post_init__(self) -> None:
        if self.noise < 0:
            raise ValueError(f"dataset.utility.noise must be >= 0, got {self.noise}")


@dataclass
class SynthWorldConfig:
    name: str = MISSING
    media: Media = MISSING
    num_prompts: int = 200
    renders_per_prompt: int = 2  # candidates per prompt; every pair among them is judged
    image_size: int = 64
    num_frames: int = 8
    face_rate: float = 0.4
    level_concentration: float = 0.5  # higher: more neutral levels, fewer extremes
    tie_fraction: float = 0.2
    seed: int = 0
    chunk_size: int = 128  # prompts per written part (the unit of resume)
    out_dir: str = MISSING
    utility: UtilityConfig = field(default_factory=UtilityConfig)

    def __post_init__(self) -> None:
        checks = {
            "num_prompts": self.num_prompts >= 1,
            "renders_per_prompt": self.renders_per_prompt >= 2,
            "image_size": self.image_size >= 32,
            "num_frames": self.num_frames >= 6,
            "face_rate": 0.0 <= self.face_rate <= 1.0,
            "level_concentration": self.level_concentration >= 0,
            "tie_fraction": 0.0 <= self.tie_fraction < 1.0,
            "chunk_size": self.chunk_size >= 1,
        }
        for key, ok in checks.items():
            if not ok:
                raise ValueError(f"dataset.{key}={getattr(self, key)!r} is out of range")


# --------------------------------------------------------------------------- task/
@dataclass
class MakeDataTaskConfig:
    name: str = "make_data"
    overwrite: bool = False  # re-render a split whose manifest differs instead of failing
    print_summary: bool = True


# --------------------------------------------------------------------------- logger/
@dataclass
class WandbLoggerConfig:
    _target_: str = "vrexp.tracking.loggers.QuietWandbLogger"
    project: str = "vrexp"
    entity: str | None = None
    offline: bool = True  # online only when the user sets logger.offline=false
    save_dir: str = MISSING
    group: str | None = None  # default: the multirun sweep, so a sweep's jobs share a group
    name: str | None = None  # default: task plus the job's overrides
    job_type: str | None = None
    tags: list[str] = field(default_factory=list)
    log_model: bool = False


@dataclass
class CSVLoggerConfig:
    _target_: str = "pytorch_lightning.loggers.CSVLogger"
    save_dir: str = MISSING
    name: str = "csv"
    version: str | None = None


# --------------------------------------------------------------------------- trainer/
@dataclass
class TrainerConfig:
    _target_: str = "pytorch_lightning.Trainer"
    accelerator: str = "cpu"
    devices: Any = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: Any = "32-true"
    max_epochs: int | None = 10
    max_steps: int = -1
    min_epochs: int | None = None
    max_time: str | None = None
    check_val_every_n_epoch: int | None = 1
    val_check_interval: Any = None
    log_every_n_steps: int = 10
    limit_train_batches: Any = None
    limit_val_batches: Any = None
    num_sanity_val_steps: int | None = None
    accumulate_grad_batches: int = 1
    gradient_clip_val: float | None = None
    deterministic: Any = None
    benchmark: bool | None = None
    fast_dev_run: Any = False
    enable_checkpointing: bool = True
    enable_progress_bar: bool = True
    enable_model_summary: bool = True
    default_root_dir: str | None = None
    sync_batchnorm: bool = False


# --------------------------------------------------------------------------- paths/ and root
@dataclass
class PathsConfig:
    root_dir: str = "."
    data_dir: str = "${paths.root_dir}/data"
    log_dir: str = "${paths.root_dir}/logs"
    output_dir: str = "${hydra:runtime.output_dir}"


@dataclass
class VrexpConfig:
    task: Any = MISSING
    dataset: Any = MISSING
    dimensions: Any = MISSING
    paths: PathsConfig = field(default_factory=PathsConfig)
    logger: Any = None
    trainer: Any = MISSING
    seed: int = 0


def register_configs() -> None:
    """Store the schemas under the names that the YAML defaults lists refer to."""
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=VrexpConfig)
    cs.store(group="paths", name="base_paths", node=PathsConfig)
    cs.store(group="dimensions", name="base_checklist", node=ChecklistConfig)
    cs.store(group="dataset", name="base_synthworld", node=SynthWorldConfig)
    cs.store(group="task", name="base_make_data", node=MakeDataTaskConfig)
    cs.store(group="logger", name="base_wandb", node=WandbLoggerConfig)
    cs.store(group="logger", name="base_csv", node=CSVLoggerConfig)
    cs.store(group="trainer", name="base_trainer", node=TrainerConfig)


def check_known_keys(cfg: Any, where: str = "") -> None:
    """Raise on keys that a schema does not declare.

    Composition already rejects ``group.key=value`` for unknown keys, but Hydra's ``+group.key=value``
    opens the struct flag and would let a typo through silently.
    """
    from dataclasses import fields, is_dataclass

    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        schema = OmegaConf.get_type(cfg)
        if schema is not None and is_dataclass(schema):
            known = {f.name for f in fields(schema)}
            unknown = sorted(set(cfg.keys()) - known)
            if unknown:
                raise ValueError(
                    f"unknown config key '{where}{unknown[0]}' ({schema.__name__} has no field "
                    f"{unknown[0]!r}; known: {sorted(known)})"
                )
        for key in cfg:
            if key == "hydra":
                continue
            child = cfg._get_node(key)
            if isinstance(child, (DictConfig, ListConfig)):
                check_known_keys(child, f"{where}{key}.")
    elif isinstance(cfg, ListConfig):
        for i, child in enumerate(cfg._content or []):
            if isinstance(child, (DictConfig, ListConfig)):
                check_known_keys(child, f"{where}{i}.")
