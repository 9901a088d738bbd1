"""Experiment tracking: the configured Lightning logger (W&B offline by default) for every task."""

from vrexp.tracking.loggers import (
    build_logger,
    close_logger,
    log_media_table,
    log_table,
    run_identity,
    stage_logger,
)

__all__ = [
    "build_logger",
    "close_logger",
    "log_media_table",
    "log_table",
    "run_identity",
    "stage_logger",
]
