"""Schema of ``trainer/``: Lightning ``Trainer`` settings shared by every training stage.

The stages' budgets (``max_epochs``, ``max_steps``, ``max_time``) come from the task, not from
here; see :class:`vrexp.configs.training.TrainingBudget`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class TrainerConfig:
    _target_: str = "pytorch_lightning.Trainer"
    accelerator: str = "cpu"
    devices: Any = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: Any = "32-true"
    check_val_every_n_epoch: int | None = 1
    val_check_interval: Any = None
    log_every_n_steps: int = 10
    limit_train_batches: Any = None
    limit_val_batches: Any = None
    num_sanity_val_steps: int | None = None
    accumulate_grad_batches: int = 1
    gradient_clip_val: float | None = 1.0
    deterministic: Any = None
    benchmark: bool | None = None
    fast_dev_run: Any = False
    enable_checkpointing: bool = True
    enable_progress_bar: bool = True
    enable_model_summary: bool = True
    default_root_dir: str | None = None
    sync_batchnorm: bool = False
