"""Schema of ``trainer/``: Lightning ``Trainer`` settings shared by every training stage.

The stages' budgets (``max_epochs``, ``max_steps``, ``max_time``) come from the task, not from
here; see :class:`vrexp.configs.training.TrainingBudget`. ``fsdp`` is vrexp's own key (not a
``Trainer`` argument): the settings of ``strategy: fsdp``, built by
:func:`vrexp.modules.trainer.build_trainer` (docs/distributed.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vrexp.configs.choices import ShardingStrategy, StateDictType


@dataclass
class FSDPSettings:
    """``trainer.fsdp``: Lightning's ``FSDPStrategy`` for ``strategy: fsdp``. Each family's
    repeated blocks (``shard_layers`` of the backbone or generator class) are the wrap units;
    mixed precision is ``trainer.precision`` (``bf16-mixed``: bf16 parameters, gradients and
    buffers inside FSDP)."""

    sharding_strategy: ShardingStrategy = ShardingStrategy.FULL_SHARD
    activation_checkpointing: bool = True  # recompute each block's activations in the backward
    cpu_offload: bool = False  # parameters in CPU memory between uses (slower; for the largest)
    state_dict_type: StateDictType = StateDictType.full


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
    # vrexp's training loaders shard themselves under DDP (vrexp.data.resumable): each item once
    # per epoch, in the single process's order. Lightning's DistributedSampler would pad with
    # repeated items and reorder them.
    use_distributed_sampler: bool = False
    fsdp: FSDPSettings = field(default_factory=FSDPSettings)
