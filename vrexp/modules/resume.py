"""Resuming a killed training stage from its last Lightning checkpoint.

A training stage's checkpoints live beside its output, in ``<output>.checkpoints/`` (the output
itself, a model folder, appears only when training is done, see :func:`vrexp.atomic.atomic_dir`).
That folder's manifest records every setting that shapes the training; a rerun into the same
output resumes from ``last.ckpt`` only when all of them match, and otherwise stops naming what
changed (or, with ``task.overwrite=true``, deletes the old checkpoints and starts afresh). The
checkpoint names carry no version counter, so a rerun never leaves a ``last-v1.ckpt`` beside a
stale ``last.ckpt``, and the folder is deleted once the model is exported.

What a checkpoint holds besides Lightning's own state: the training loader's position
(:mod:`vrexp.data.resumable`) and the random generators (:class:`RandomState`), so a resumed run
draws the same noise as an uninterrupted one. Every checkpoint is written atomically and read with
``weights_only=True`` (:class:`SafeCheckpointIO`): it holds tensors and plain values only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import random
import shutil
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import Callback, ModelCheckpoint

from vrexp.atomic import atomic_write
from vrexp.configs.checks import ConfigValueError
from vrexp.data.atomic import OutputClaimError, claim_output
from vrexp.ranks import is_rank_zero

log = logging.getLogger(__name__)

LAST = "last.ckpt"
# Trainer settings that do not change what is trained (a rerun may change them freely).
COSMETIC_TRAINER_KEYS = ("enable_progress_bar", "enable_model_summary", "log_every_n_steps")


class ResumeError(OutputClaimError):
    """Checkpoints of a training run with other settings, where this run would resume."""


class SafeCheckpointIO(TorchCheckpointIO):
    """Checkpoints written atomically (a kill never leaves half a ``last.ckpt``) and read with
    ``weights_only=True`` (a checkpoint cannot run code when loaded)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None
    ) -> None:
        if storage_options is not None:
            raise TypeError("SafeCheckpointIO takes no storage_options")
        atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))

    def load_checkpoint(
        self, path: Any, map_location: Any = lambda storage, loc: storage, weights_only: Any = None
    ) -> dict[str, Any]:
        if not Path(path).is_file():
            raise FileNotFoundError(f"checkpoint file not found: {path}")
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as error:
            raise ResumeError(
                f"{path} holds more than tensors and plain values, so it is not loaded (it could "
                f"run code); delete {Path(path).parent} to start afresh. torch says: "
                f"{str(error).splitlines()[0]}"
            ) from None


class RandomState(Callback):
    """The global generators (Python, NumPy, torch CPU and CUDA) in every checkpoint, restored when
    a resumed run starts training. Training steps draw noise, timesteps and prompt dropout from
    them; data loaders and validation do not (they have their own generators).

    :meth:`capture` (called just before ``trainer.fit``) records them, and the fit starts from that
    record: Lightning's DDP re-seeds every rank when it sets up the process group, which would
    otherwise discard what was drawn before the fit (e.g. the model's initialisation) and make a
    DDP run draw other noise than one process does."""

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None
        self._before_fit: dict[str, Any] | None = None

    def capture(self) -> None:
        self._before_fit = self.state_dict()

    def state_dict(self) -> dict[str, Any]:
        version, mt, gauss = random.getstate()
        numpy = np.random.get_state(legacy=False)
        return {
            "python": [version, list(mt), gauss],
            "numpy": {
                "key": torch.from_numpy(numpy["state"]["key"].astype(np.int64)),
                "pos": int(numpy["state"]["pos"]),
                "has_gauss": int(numpy["has_gauss"]),
                "gauss": float(numpy["gauss"]),
            },
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        state, self._before_fit = self._before_fit, None
        if state is not None:
            self._apply(state)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        state, self._pending = self._pending, None
        if state is not None:
            self._apply(state)

    @staticmethod
    def _apply(state: dict[str, Any]) -> None:
        version, mt, gauss = state["python"]
        random.setstate((version, tuple(mt), gauss))
        numpy = state["numpy"]
        np.random.set_state(
            {
                "bit_generator": "MT19937",
                "state": {"key": numpy["key"].numpy().astype(np.uint32), "pos": numpy["pos"]},
                "has_gauss": numpy["has_gauss"],
                "gauss": numpy["gauss"],
            }
        )
        torch.set_rng_state(state["torch"])
        if state["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


class LastCheckpoint(ModelCheckpoint):
    """``last.ckpt`` every ``every_n_train_steps`` optimizer steps and after each epoch (after its
    validation). Never at an epoch's last batch: Lightning resumes from there past the end of that
    epoch, skipping its validation (and so the best checkpoint it would have recorded)."""

    def __init__(self, dirpath: Path, every_n_train_steps: int) -> None:
        super().__init__(
            dirpath=dirpath,
            save_top_k=0,
            save_last=True,
            every_n_train_steps=every_n_train_steps,
            enable_version_counter=False,
        )

    @staticmethod
    def _at_epoch_end(trainer: pl.Trainer) -> bool:
        return trainer.fit_loop.epoch_loop.batch_progress.is_last_batch

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
        if not self._at_epoch_end(trainer):
            super().on_train_batch_end(trainer, *args, **kwargs)

    def _save_last_at_epoch_end(self, trainer: pl.Trainer) -> None:
        if not self._should_skip_saving_checkpoint(trainer) and self._at_epoch_end(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_at_epoch_end(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_at_epoch_end(trainer)


def checkpoint_dir(output: str | Path) -> Path:
    """Where the stage that writes ``output`` keeps its checkpoints."""
    output = Path(output)
    return output.with_name(f"{output.name}.checkpoints")


def config_manifest(cfg: DictConfig, groups: tuple[str, ...], **extra: Any) -> dict[str, Any]:
    """The settings of ``groups`` (``task`` and its sub-groups without their output folder,
    ``overwrite`` and ``cache_mib``; the trainer without its display settings), the seed, and
    ``extra`` (digests of the inputs)."""
    manifest: dict[str, Any] = {"seed": cfg.seed}
    for group in groups:
        node = OmegaConf.select(cfg, group)
        value = None if node is None else OmegaConf.to_container(node, resolve=True)
        if isinstance(value, dict) and group.split(".")[0] == "task":
            # Where the result goes and how much memory it takes do not change it.
            for key in ("save_dir", "out_dir", "overwrite", "cache_mib"):
                value.pop(key, None)
        if isinstance(value, dict) and group == "trainer":
            for key in COSMETIC_TRAINER_KEYS:
                value.pop(key, None)
        manifest[group] = value
    return {**manifest, **extra}


def files_listing(folder: str | Path | None) -> dict[str, int] | None:
    """An input folder's files and their sizes: a cheap record that notices a replaced model."""
    if folder is None or not Path(folder).is_dir():
        return None
    folder = Path(folder)
    return {
        str(p.relative_to(folder)): p.stat().st_size
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def rows_sha256(rows: list[dict[str, Any]]) -> str:
    """SHA-256 of a small table's rows (DPO's pairs), whatever file they were read from."""
    return hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class TrainingCheckpoints:
    """The checkpoint folder of one training run: its callbacks, the checkpoint to resume from
    (None: a fresh start) and the clean-up once the model is exported. A context: the folder's
    lock is held until it exits (or :meth:`finish`), so a second run into it is refused."""

    folder: Path
    resume_from: Path | None
    every_n_train_steps: int
    extra: list[Callback] = field(default_factory=list)
    hold: ExitStack = field(default_factory=ExitStack, repr=False)
    random: RandomState = field(default_factory=RandomState, repr=False)

    def __enter__(self) -> TrainingCheckpoints:
        return self

    def __exit__(self, *exc: object) -> None:
        self.hold.close()

    def callbacks(self) -> list[Callback]:
        last = LastCheckpoint(self.folder, self.every_n_train_steps)
        return [*self.extra, last, self.random]

    def fit(self, trainer: pl.Trainer, module: pl.LightningModule, **data: Any) -> None:
        """``trainer.fit``, from the last checkpoint when resuming."""
        if self.resume_from is not None:
            log.info("resuming from %s", self.resume_from)
        self.random.capture()
        trainer.fit(module, ckpt_path=self.resume_from, weights_only=True, **data)

    def finish(self) -> None:
        """Delete the checkpoints (rank zero): the model they were for has been exported."""
        self.hold.close()
        if is_rank_zero():
            shutil.rmtree(self.folder, ignore_errors=True)


def claim_checkpoints(
    cfg: DictConfig,
    output: str | Path,
    manifest: dict[str, Any],
    *,
    overwrite: bool,
    what: str,
    folder_key: str = "task.save_dir",
    extra: Callable[[Path], list[Callback]] | None = None,
) -> TrainingCheckpoints:
    """The checkpoint folder for ``output``: resumed when its manifest is ``manifest``, refused
    naming what changed when it differs (or cleared, with ``overwrite``); the folder's own
    checkpoint callbacks made by ``extra(folder)`` (e.g. a best-validation checkpoint). Use it as a
    context (``with claim_checkpoints(...) as checkpoints``): the folder is locked until it exits."""
    folder = checkpoint_dir(output)
    if not is_rank_zero():
        # Under DDP rank zero claims (and, on a fresh start, clears) the folder before the other
        # ranks start; they resume from what it left there and write nothing.
        return _checkpoints(cfg, folder, extra, ExitStack(), clear=False)
    # Checkpoints without a manifest are refused (or cleared) by claim_output, under the lock.
    stale = ("*.ckpt",)
    hold = ExitStack()
    try:
        hold.enter_context(
            claim_output(
                folder,
                manifest,
                overwrite,
                stale=stale,
                what=f"{what} checkpoints",
                folder_key=folder_key,
            )
        )
    except OutputClaimError as error:
        raise ResumeError(f"cannot resume: {error}") from None
    try:
        return _checkpoints(cfg, folder, extra, hold)
    except BaseException:
        hold.close()
        raise


def _checkpoints(
    cfg: DictConfig,
    folder: Path,
    extra: Callable[[Path], list[Callback]] | None,
    hold: ExitStack,
    *,
    clear: bool = True,
) -> TrainingCheckpoints:
    last = folder / LAST
    if (
        clear and not last.is_file()
    ):  # a fresh start: no checkpoint of an earlier attempt stays beside
        for old in folder.glob("*.ckpt"):
            old.unlink()
    every = OmegaConf.select(cfg, "callbacks.resume.every_n_train_steps", default=None)
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ConfigValueError(
            f"callbacks.resume.every_n_train_steps must be an integer >= 1, got {every!r}"
        )
    return TrainingCheckpoints(
        folder,
        last if last.is_file() else None,
        every,
        extra(folder) if extra is not None else [],
        hold,
    )
