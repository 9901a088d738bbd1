"""Schemas of ``logger/``: W&B (offline by default) and CSV."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

from vrexp.configs.checks import require
from vrexp.configs.choices import InitFailure


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
    # Seconds wandb.init may take (online: reaching the server) before on_init_failure applies;
    # wandb's own default is 90 s of silence.
    init_timeout: float = 30.0
    on_init_failure: InitFailure = InitFailure.offline
    # Seconds a finishing online run may spend uploading before it gives up (what is not sent
    # stays in the run folder for `wandb sync`); 0 waits however long it takes, as wandb does.
    finish_timeout: float = 300.0

    def __post_init__(self) -> None:
        require(
            "logger",
            {"init_timeout": self.init_timeout > 0, "finish_timeout": self.finish_timeout >= 0},
            self,
        )


@dataclass
class CSVLoggerConfig:
    _target_: str = "pytorch_lightning.loggers.CSVLogger"
    save_dir: str = MISSING
    name: str = "csv"
    version: str | None = None
