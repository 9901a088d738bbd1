"""Stage ``train_generator``: pretrain a tiny generator on the dataset's media and prompts.

The base model of preference optimization. On SynthWorld it learns from renders of every quality
level, so its samples span quality levels as a real base model's do: mediocre, but responsive to
what DPO then rewards. Writes a generator folder (``load_generator``) and a preview grid.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger
from rich.console import Console

from vrexp.checklist import Checklist
from vrexp.data.generation import GenerationDataModule, MediaPromptDataset
from vrexp.data.media import save_media
from vrexp.data.pairs import item_records
from vrexp.data.synthworld import ensure_split
from vrexp.generators import GeneratorError, TextToMediaGenerator, build_generator
from vrexp.modules import GeneratorModule
from vrexp.tracking import stage_logger


def generator_config(cfg: DictConfig) -> Any:
    settings = OmegaConf.to_object(cfg.generator)
    media = OmegaConf.select(cfg, "dataset.media")
    made = getattr(settings.media, "value", settings.media)
    if media is not None and made != getattr(media, "value", media):
        raise GeneratorError(
            f"generator {settings.name!r} makes {made}s but dataset "
            f"{cfg.dataset.name!r} holds {media}s; pick a matching pair (e.g. generator=tiny_video "
            "dataset=synthworld_video)"
        )
    return settings


def step_limits(task: DictConfig) -> dict[str, Any]:
    """Trainer limits of a generator stage: ``max_steps``, and ``max_time`` when set."""
    limits: dict[str, Any] = {"max_steps": task.max_steps, "max_epochs": -1}
    if task.max_time is not None:
        limits["max_time"] = task.max_time
    return limits


def train_generator(cfg: DictConfig, logger: Logger | None = None) -> dict[str, Any]:
    task = cfg.task
    pl.seed_everything(cfg.seed, workers=True)
    settings = generator_config(cfg)
    if settings.name_or_path is not None:
        raise GeneratorError(
            f"train_generator pretrains tiny generators from scratch; {settings.name!r} loads "
            "weights (use it directly in sample / train_dpo)"
        )
    checklist = Checklist.from_config(cfg.dimensions)
    split_dir = ensure_split(OmegaConf.to_object(cfg.dataset), checklist)
    records = list(item_records(split_dir).values())
    order = np.random.default_rng(cfg.seed).permutation(len(records))
    num_val = round(task.val_fraction * len(records))
    val = [records[i] for i in order[:num_val]]
    train = [records[i] for i in order[num_val:]]
    generator = build_generator(settings)
    module = GeneratorModule(
        generator,
        lr=task.lr,
        weight_decay=task.weight_decay,
        warmup_steps=task.warmup_steps,
        cond_dropout=task.cond_dropout,
        train_text_encoder=task.train_text_encoder,
    )
    data = GenerationDataModule(
        MediaPromptDataset(train),
        MediaPromptDataset(val),
        batch_size=task.batch_size,
        seed=cfg.seed,
    )
    with stage_logger(cfg, logger) as logger:
        trainer = instantiate(
            cfg.trainer,
            logger=logger if logger is not None else False,
            enable_checkpointing=False,
            check_val_every_n_epoch=1,
            **step_limits(task),
        )
        trainer.fit(module, datamodule=data)
        train_loss = float(trainer.callback_metrics.get("train/loss", float("nan")))
        # The final validation loss, also when training stopped inside the first epoch.
        validated = trainer.validate(module, datamodule=data, verbose=False) if val else [{}]
        save_dir = Path(task.save_dir)
        generator.save_pretrained(save_dir)
        preview = save_preview(generator, [p for _, p in val[: task.num_preview]], save_dir)
        result = {
            "steps": trainer.global_step,
            "train_loss": train_loss,
            "val_loss": float(validated[0].get("val/loss", float("nan"))),
            "save_dir": str(save_dir),
        }
        (save_dir / "training.json").write_text(json.dumps(result, indent=2) + "\n")
        if logger is not None and hasattr(logger, "log_image") and preview is not None:
            logger.log_image(key="generator/preview", images=[str(preview)])
    Console().print(
        f"generator pretrained for {result['steps']} steps (val loss {result['val_loss']:.4f}); "
        f"saved to {save_dir}"
    )
    return result


def save_preview(generator: TextToMediaGenerator, prompts: list[str], out_dir: Path) -> Path | None:
    """A row of samples (first frames for video) for a quick look, as ``preview.png``."""
    if not prompts:
        return None
    media = generator.generate(prompts, list(range(len(prompts))))
    frames = media[:, 0] if media.ndim == 5 else media
    path = out_dir / "preview.png"
    save_media(path, np.concatenate(list(frames), axis=1))
    (out_dir / "preview_prompts.json").write_text(json.dumps(prompts, indent=2) + "\n")
    return path
