"""Settings shared by the training stages: the optimiser, the training budget, the item cache.

Task schemas inherit these, so their keys stay flat (``task.lr``, ``task.max_epochs``) and the
LightningModules and the Trainer builder take the settings object instead of re-declaring
keyword defaults. Budgets are steps or epochs, so a seed gives the same model on any machine;
``max_time`` is only an optional safety cap (null by default).
"""

from __future__ import annotations

from dataclasses import dataclass

from vrexp.configs.checks import require


def _next_post_init(cls: type, obj: object) -> None:
    """Run the next ``__post_init__`` in ``obj``'s MRO after ``cls``: a task schema inherits from
    several settings classes, and each one's checks must run."""
    after = super(cls, obj)
    if hasattr(after, "__post_init__"):
        after.__post_init__()


@dataclass
class OptimSettings:
    """AdamW with a linear warmup and cosine decay."""

    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 50

    def __post_init__(self) -> None:
        require(
            "task",
            {
                "lr": self.lr > 0,
                "weight_decay": self.weight_decay >= 0,
                "warmup_steps": self.warmup_steps >= 0,
            },
            self,
        )
        _next_post_init(OptimSettings, self)


@dataclass
class BackboneOptimSettings(OptimSettings):
    # The vision tower learns at lr x this: trained from scratch at the full rate it loses its
    # features faster than the language model learns to read them.
    vision_lr_scale: float = 0.1
    # The vision-language projector (Qwen2-VL's patch merger, LLaVA's multi_modal_projector) learns
    # at lr x this; None keeps the family's layout: Qwen's merger sits inside the vision tower and
    # learns with it, LLaVA's projector sits beside it and learns with the language model.
    projector_lr_scale: float | None = None

    def __post_init__(self) -> None:
        require(
            "task",
            {
                "vision_lr_scale": self.vision_lr_scale >= 0,
                "projector_lr_scale": self.projector_lr_scale is None
                or self.projector_lr_scale >= 0,
            },
            self,
        )
        _next_post_init(BackboneOptimSettings, self)


@dataclass
class TrainingBudget:
    """When training stops: ``max_epochs`` and/or ``max_steps`` (-1: no step limit)."""

    max_epochs: int | None = None
    max_steps: int = -1
    max_time: str | None = None  # "DD:HH:MM:SS": an optional wall-clock cap, off by default

    def __post_init__(self) -> None:
        require(
            "task",
            {
                "max_epochs": self.max_epochs is None or self.max_epochs >= 1,
                "max_steps": self.max_steps == -1 or self.max_steps >= 1,
                "max_epochs or max_steps": self.max_epochs is not None or self.max_steps != -1,
            },
            self,
        )
        _next_post_init(TrainingBudget, self)

    def trainer_limits(self) -> dict[str, object]:
        """The budget as ``Trainer`` arguments (-1 epochs: no epoch limit)."""
        limits: dict[str, object] = {
            "max_epochs": -1 if self.max_epochs is None else self.max_epochs,
            "max_steps": self.max_steps,
        }
        if self.max_time is not None:
            limits["max_time"] = self.max_time
        return limits


@dataclass
class ItemCacheSettings:
    """How much of what a training stage reads per item is kept between epochs
    (:class:`vrexp.data.item_cache.ItemCache`)."""

    # MiB of read media and processor outputs, per process (0: none). Reading an item again costs
    # a few ms (tiny backbone: about 4) against tens for its training step: a bound costs little.
    cache_mib: int = 128

    def __post_init__(self) -> None:
        require("task", {"cache_mib": self.cache_mib >= 0}, self)
        _next_post_init(ItemCacheSettings, self)
