"""The one place a training stage's Lightning ``Trainer`` is built.

Every training stage (checklist SFT, the pairwise baselines, generator pretraining, DPO) gets the
``trainer`` group's settings, the callbacks of the ``callbacks`` group, the stage's own budget
(:class:`~vrexp.configs.training.TrainingBudget`: epochs or steps, never a wall clock unless asked
for) and the run's logger. ``strategy: fsdp`` becomes Lightning's ``FSDPStrategy`` here, wrapping
the stage model's ``shard_layers`` (the family's repeated blocks) with ``trainer.fsdp``'s settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import Callback, LearningRateMonitor
from pytorch_lightning.loggers import Logger
from pytorch_lightning.strategies import FSDPStrategy
from torch import nn

from vrexp.configs.checks import ConfigValueError
from vrexp.configs.trainer import FSDPSettings
from vrexp.configs.training import TrainingBudget
from vrexp.modules.resume import SafeCheckpointIO, TrainingCheckpoints

NEEDS_LOGGER = (LearningRateMonitor,)


def stage_callbacks(cfg: DictConfig, logger: Logger | None) -> list[Callback]:
    """The ``callbacks.every_stage`` entries that apply (those needing a logger only with one)."""
    entries = OmegaConf.select(cfg, "callbacks.every_stage", default=None) or {}
    built = [instantiate(entry) for entry in entries.values() if entry is not None]
    return [c for c in built if logger is not None or not isinstance(c, NEEDS_LOGGER)]


def checkpoint_callback(cfg: DictConfig, folder: str | Path) -> Callback:
    """The ``callbacks.checkpoint`` entry (train_checklist's best-validation checkpoint), written
    into ``folder`` without version counters (a rerun overwrites, never adds ``-v1`` files)."""
    return instantiate(cfg.callbacks.checkpoint, dirpath=str(folder), enable_version_counter=False)


def fsdp_strategy(settings: FSDPSettings, shard_layers: Sequence[type[nn.Module]]) -> FSDPStrategy:
    """Lightning's FSDP strategy with ``shard_layers`` as the wrap (and, if asked, activation
    checkpointing) units."""
    if not shard_layers:
        raise ConfigValueError(
            "trainer.strategy=fsdp: this stage's model names no layers to shard (shard_layers of "
            "its backbone or generator family); use trainer=ddp"
        )
    layers = set(shard_layers)
    return FSDPStrategy(
        auto_wrap_policy=layers,
        activation_checkpointing_policy=layers if settings.activation_checkpointing else None,
        sharding_strategy=str(settings.sharding_strategy),
        cpu_offload=settings.cpu_offload,
        state_dict_type=str(settings.state_dict_type),
    )


def trainer_arguments(
    trainer: DictConfig, shard_layers: Sequence[type[nn.Module]] = ()
) -> dict[str, Any]:
    """The ``trainer`` group as ``Trainer`` arguments (with its ``_target_``): ``fsdp`` (vrexp's
    key) left out, and ``strategy: fsdp`` made the strategy object that shards ``shard_layers``."""
    settings = OmegaConf.to_container(trainer, resolve=True)
    fsdp = settings.pop("fsdp", None)
    if settings.get("strategy") == "fsdp":
        fsdp = OmegaConf.to_object(trainer.fsdp) if fsdp is not None else FSDPSettings()
        settings["strategy"] = fsdp_strategy(fsdp, shard_layers)
    return settings


def build_trainer(
    cfg: DictConfig,
    budget: TrainingBudget,
    logger: Logger | None,
    *,
    callbacks: Sequence[Callback] = (),
    checkpoints: TrainingCheckpoints | None = None,
    shard_layers: Sequence[type[nn.Module]] = (),
    unused_parameters: bool = False,
    **overrides: Any,
) -> pl.Trainer:
    """``cfg.trainer`` with ``budget``'s limits, the configured and the given callbacks, the
    resumable ``checkpoints`` (none: checkpointing off), and ``overrides`` on top. Checkpoints
    are written atomically and read with ``weights_only=True``. ``shard_layers``: the stage
    model's blocks, for ``strategy: fsdp``. ``unused_parameters``: the stage's loss leaves some
    trainable parameters out (a reward head beside the LM head), which DDP must be told of."""
    own = [] if checkpoints is None else checkpoints.callbacks()
    arguments = trainer_arguments(cfg.trainer, shard_layers)
    if unused_parameters and arguments.get("strategy") == "ddp":
        arguments["strategy"] = "ddp_find_unused_parameters_true"
    return instantiate(
        arguments,
        logger=logger if logger is not None else False,
        callbacks=[*stage_callbacks(cfg, logger), *callbacks, *own],
        plugins=[SafeCheckpointIO()],
        **{
            **budget.trainer_limits(),
            "enable_checkpointing": checkpoints is not None,
            **overrides,
        },
    )
