"""Build the configured Lightning logger and give it a readable name and a sweep-wide group.

Tasks without a Trainer log through the same object (``log_hyperparams`` / ``log_metrics``), so
every stage, trained or not, lands in W&B the same way. Under ``--multirun`` every job of a sweep
joins one W&B group named after the sweep folder; each run is named after its task and overrides.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger, WandbLogger

from vrexp.configs.choices import InitFailure
from vrexp.configs.logger import WandbLoggerConfig
from vrexp.ranks import is_rank_zero

log = logging.getLogger(__name__)


class WandbInitError(RuntimeError):
    """An online W&B run that could not start (``logger.on_init_failure=fail``)."""


class QuietWandbLogger(WandbLogger):
    """Lightning's WandbLogger without the ``anonymous`` init argument, and with a bounded start.

    Lightning 2.6 always passes ``anonymous``; wandb >= 0.2x deprecated it and warns on every run.
    ``wandb.init`` waits at most ``init_timeout`` seconds (``wandb.Settings(init_timeout=...)``);
    an online run that cannot start (no network, server down, no API key) then logs offline with
    a warning, or raises :class:`WandbInitError`, as ``on_init_failure`` says. A finishing run
    uploads for at most ``finish_timeout`` seconds (0: no limit); the rest stays on disk.
    """

    def __init__(
        self,
        *args: Any,
        init_timeout: float = WandbLoggerConfig.init_timeout,
        on_init_failure: InitFailure | str = InitFailure.offline,
        finish_timeout: float = WandbLoggerConfig.finish_timeout,
        **kwargs: Any,
    ) -> None:
        import wandb

        settings = wandb.Settings(init_timeout=init_timeout, finish_timeout=finish_timeout)
        super().__init__(*args, settings=settings, **kwargs)
        self._wandb_init.pop("anonymous", None)
        self.init_timeout = init_timeout
        self.on_init_failure = InitFailure(on_init_failure)
        # Stages chained in one run each restart their Trainer's step at 0; they log after the
        # previous stage's last step instead of on top of it (see next_stage).
        self.step_offset = 0
        self.last_step = -1

    @property
    def experiment(self) -> Any:
        if self._experiment is None and not self._offline:
            import wandb

            try:
                return super().experiment
            except wandb.Error as err:
                reason = f"{type(err).__name__}: {str(err).strip().splitlines()[0]}"
                if self.on_init_failure is InitFailure.fail:
                    raise WandbInitError(
                        f"W&B could not start an online run within logger.init_timeout="
                        f"{self.init_timeout:g} s ({reason}). Check the network and the API key, "
                        "log offline (logger.offline=true), or set "
                        "logger.on_init_failure=offline to fall back to offline logging"
                    ) from err
                log.warning(
                    "W&B could not start an online run within logger.init_timeout=%g s (%s); "
                    "logging offline to %s instead: upload it later with `wandb sync %s/wandb/"
                    "offline-run-*` (logger.on_init_failure=fail stops instead)",
                    self.init_timeout,
                    reason,
                    self._save_dir,
                    self._save_dir,
                )
                self._offline = True
                self._wandb_init["mode"] = "offline"
        return super().experiment

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if step is not None:
            step += self.step_offset
            self.last_step = max(self.last_step, step)
        super().log_metrics(metrics, step)


def next_stage(logger: Logger | None) -> None:
    """Start the next chained stage's steps after the last step logged so far."""
    if isinstance(logger, QuietWandbLogger):
        logger.step_offset = logger.last_step + 1


def run_identity(task: str) -> tuple[str, str | None]:
    """(run name, group): the group is set only for multirun jobs."""
    if not HydraConfig.initialized():
        return task, None
    hc = HydraConfig.get()
    overrides = OmegaConf.select(hc, "job.override_dirname", default="") or ""
    name = f"{task}[{overrides}]" if overrides else task
    if hc.mode == RunMode.MULTIRUN:
        sweep = Path(hc.sweep.dir)
        return (
            name,
            f"{sweep.parent.parent.name}-{sweep.name}"
            if sweep.parent.name == "multiruns"
            else sweep.name,
        )
    return name, None


def build_logger(cfg: DictConfig) -> Logger | None:
    """Instantiate ``cfg.logger`` (or return None), filling in W&B's name and group. Under DDP
    only rank zero logs: the other ranks get None (no run folder, no W&B run)."""
    if cfg.get("logger") is None or not is_rank_zero():
        return None
    logger_cfg = OmegaConf.to_container(cfg.logger, resolve=True)
    Path(logger_cfg["save_dir"]).mkdir(parents=True, exist_ok=True)
    if logger_cfg["_target_"].endswith("WandbLogger"):
        name, group = run_identity(cfg.task.name)
        logger_cfg["name"] = logger_cfg.get("name") or name
        logger_cfg["group"] = logger_cfg.get("group") or group
        if logger_cfg.get("offline", True):
            # Belt and braces: a user's WANDB_MODE=online must not turn a default run online.
            os.environ["WANDB_MODE"] = "offline"
        os.environ.setdefault("WANDB_SILENT", "true")
        os.environ.setdefault("WANDB_CONSOLE", "off")
    logger = instantiate(logger_cfg)
    logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return logger


def log_table(logger: Logger | None, key: str, columns: list[str], rows: list[list[Any]]) -> None:
    """Log a small table where the logger supports one (W&B); other loggers skip it."""
    if isinstance(logger, WandbLogger):
        logger.log_table(key=key, columns=columns, data=rows)


def log_media_table(
    logger: Logger | None, key: str, columns: list[str], rows: list[list[Any]], media: str
) -> None:
    """Log a table whose ``media`` column holds uint8 pictures as ``wandb.Image`` s (W&B only)."""
    if not isinstance(logger, WandbLogger):
        return
    import wandb

    at = columns.index(media)
    data = [[*r[:at], wandb.Image(r[at]), *r[at + 1 :]] for r in rows]
    logger.log_table(key=key, columns=columns, data=data)


def close_logger(logger: Logger | None, failed: bool = False) -> None:
    """Flush and close; W&B runs are finished (exit code 1 when ``failed``) so that a crashed job
    is recorded as failed and the next multirun job starts a fresh run."""
    if logger is None:
        return
    logger.finalize("failed" if failed else "success")
    if isinstance(logger, WandbLogger):
        logger.experiment.finish(exit_code=1 if failed else 0)


@contextmanager
def stage_logger(cfg: DictConfig, logger: Logger | None = None) -> Iterator[Logger | None]:
    """The logger a stage writes to: the caller's (a pipeline shares one run across its stages),
    or a fresh one from ``cfg`` that is closed when the stage ends."""
    if logger is not None:
        yield logger
        return
    own = build_logger(cfg)
    try:
        yield own
    except BaseException:
        close_logger(own, failed=True)
        raise
    close_logger(own)
