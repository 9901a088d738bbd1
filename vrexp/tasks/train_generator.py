"""Stage ``train_generator``: pretrain a tiny generator on the dataset's media and prompts.

The base model of preference optimization. On SynthWorld it learns from renders of every quality
level, so its samples span quality levels as a real base model's do: mediocre, but responsive to
what DPO then rewards. Writes a generator folder (``load_generator``) and a preview grid, whole
at the end; a killed run rerun into the same ``save_dir`` resumes (:mod:`vrexp.modules.resume`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger

from vrexp.atomic import atomic_dir
from vrexp.checklist import Checklist
from vrexp.data.generation import GenerationDataModule, MediaPromptDataset
from vrexp.data.pairs import item_records
from vrexp.data.synthworld import ensure_split
from vrexp.generators import GeneratorError, TextToMediaGenerator, build_generator
from vrexp.generators.sampling import generator_settings
from vrexp.media import save_media
from vrexp.modules import GeneratorModule
from vrexp.modules.resume import claim_checkpoints, config_manifest
from vrexp.modules.trainer import build_trainer
from vrexp.ranks import is_rank_zero
from vrexp.tracking import stage_logger

log = logging.getLogger(__name__)


def train_generator(cfg: DictConfig, logger: Logger | None = None) -> dict[str, Any]:
    task = OmegaConf.to_object(cfg.task)
    pl.seed_everything(cfg.seed, workers=True)
    settings = generator_settings(cfg)
    if settings.name_or_path is not None:
        raise GeneratorError(
            f"train_generator pretrains tiny generators from scratch; {settings.name!r} loads "
            "weights (use it directly in sample / train_dpo)"
        )
    save_dir = Path(task.save_dir or Path(cfg.paths.output_dir) / "generator")
    with claim_checkpoints(
        cfg,
        save_dir,
        config_manifest(cfg, ("task", "dataset", "dimensions", "generator", "trainer")),
        overwrite=task.overwrite,
        what="generator pretraining",
    ) as checkpoints:
        checklist = Checklist.from_config(cfg.dimensions)
        split_dir = ensure_split(OmegaConf.to_object(cfg.dataset), checklist)
        records = list(item_records(split_dir).values())
        order = np.random.default_rng(cfg.seed).permutation(len(records))
        num_val = round(task.val_fraction * len(records))
        val = [records[i] for i in order[:num_val]]
        train = [records[i] for i in order[num_val:]]
        generator = build_generator(settings)
        module = GeneratorModule(generator, task)
        data = GenerationDataModule(
            MediaPromptDataset(train),
            MediaPromptDataset(val),
            batch_size=task.batch_size,
            seed=cfg.seed,
        )
        with stage_logger(cfg, logger) as logger:
            trainer = build_trainer(
                cfg,
                task,
                logger,
                checkpoints=checkpoints,
                shard_layers=generator.shard_layers,
                check_val_every_n_epoch=1,
            )
            checkpoints.fit(trainer, module, datamodule=data)
            train_loss = float(trainer.callback_metrics.get("train/loss", float("nan")))
            # The final validation loss, also when training stopped inside the first epoch.
            validated = trainer.validate(module, datamodule=data, verbose=False) if val else [{}]
            result = {
                "steps": trainer.global_step,
                "train_loss": train_loss,
                "val_loss": float(validated[0].get("val/loss", float("nan"))),
                "save_dir": str(save_dir),
            }
            # sample and train_dpo read this folder: it appears whole, once training is done.
            has_preview = None
            if is_rank_zero():  # under DDP every rank holds the same weights
                with atomic_dir(save_dir) as tmp:
                    generator.save_pretrained(tmp)
                    has_preview = save_preview(
                        generator, [p for _, p in val[: task.num_preview]], tmp
                    )
                    (tmp / "training.json").write_text(json.dumps(result, indent=2) + "\n")
            checkpoints.finish()
            if logger is not None and hasattr(logger, "log_image") and has_preview is not None:
                logger.log_image(key="generator/preview", images=[str(save_dir / "preview.png")])
        log.info(
            "generator pretrained for %d steps (val loss %.4f); saved to %s",
            result["steps"],
            result["val_loss"],
            save_dir,
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
