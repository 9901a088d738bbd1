"""The one place a training stage's Lightning ``Trainer`` is built.

Every training stage (checklist SFT, the pairwise baselines, generator pretraining, DPO) gets the
``trainer`` group's settings, the callbacks of the ``callbacks`` group, the stage's own budget
(:class:`~vrexp.configs.training.TrainingBudget`: epochs or steps, never a wall clock unless asked
for) and the run's logger.
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


def build_trainer(
    cfg: DictConfig,
    budget: TrainingBudget,
    logger: Logger | None,
    *,
    callbacks: Sequence[Callback] = (),
    checkpoints: TrainingCheckpoints | None = None,
    **overrides: Any,
) -> pl.Trainer:
    """``cfg.trainer`` with ``budget``'s limits, the configured and the given callbacks, the
    resumable ``checkpoints`` (none: checkpointing off), and ``overrides`` on top. Checkpoints
    are written atomically and read with ``weights_only=True``."""
    own = [] if checkpoints is None else checkpoints.callbacks()
    return instantiate(
        cfg.trainer,
        logger=logger if logger is not None else False,
        callbacks=[*stage_callbacks(cfg, logger), *callbacks, *own],
        plugins=[SafeCheckpointIO()],
        **{
            **budget.trainer_limits(),
            "enable_checkpointing": checkpoints is not None,
            **overrides,
        },
    )
