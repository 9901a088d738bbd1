"""Stage ``train_checklist``: fine-tune the checklist VLM and save it as an HF folder.

A killed run rerun into the same ``save_dir`` resumes from its last checkpoint
(:mod:`vrexp.modules.resume`); the model folder is written whole at the end.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger
from rich.table import Table

from vrexp.atomic import atomic_dir
from vrexp.backbones import build_backbone
from vrexp.backbones.provenance import save_provenance
from vrexp.checklist import Checklist
from vrexp.data.visionrewarddb import checklist_data_module
from vrexp.modules import ChecklistModule
from vrexp.modules.resume import claim_checkpoints, config_manifest
from vrexp.modules.trainer import build_trainer, checkpoint_callback
from vrexp.ranks import is_rank_zero
from vrexp.tracking import log_table, stage_logger
from vrexp.tracking.console import render

log = logging.getLogger(__name__)


def train_checklist(cfg: DictConfig, logger: Logger | None = None) -> dict[str, Any]:
    task = OmegaConf.to_object(cfg.task)
    dataset = OmegaConf.to_object(cfg.dataset)
    pl.seed_everything(cfg.seed, workers=True)
    save_dir = Path(task.save_dir or Path(cfg.paths.output_dir) / "checklist_model")
    with claim_checkpoints(
        cfg,
        save_dir,
        config_manifest(cfg, ("task", "dataset", "dimensions", "backbone", "trainer")),
        overwrite=task.overwrite,
        what="checklist training",
        extra=lambda folder: [checkpoint_callback(cfg, folder)],
    ) as checkpoints:
        checklist = Checklist.from_config(cfg.dimensions)
        backbone = build_backbone(OmegaConf.to_object(cfg.backbone))
        data = checklist_data_module(
            dataset,
            checklist,
            partition=getattr(dataset, "partition", None),
            frames=backbone.config.frames,
            batch_size=task.batch_size,
            balanced=task.balanced,
            questions_per_item=task.questions_per_item,
            prompt_swaps=task.prompt_swaps,
            colour_questions=task.colour_questions,
            processor=backbone.process,
            seed=cfg.seed,
            cache_mib=task.cache_mib,
        )
        module = ChecklistModule(backbone, checklist, task, task.loss_weights)
        (checkpoint,) = checkpoints.extra
        with stage_logger(cfg, logger) as logger:
            trainer = build_trainer(
                cfg, task, logger, checkpoints=checkpoints, shard_layers=backbone.shard_layers
            )
            checkpoints.fit(trainer, module, datamodule=data)
            best = checkpoint.best_model_path or None
            trainer.test(module, datamodule=data, ckpt_path=best, weights_only=True)
            test = module.results.get("test", {})
            results = {
                "test": test,
                "best_val_acc": float(checkpoint.best_model_score or 0),
                "steps": trainer.global_step,
            }
            # Annotate and the pipeline read this folder: it appears whole, once training is done.
            # Under DDP every rank holds the same weights; rank zero writes them.
            if is_rank_zero():
                with atomic_dir(save_dir) as tmp:
                    backbone.save_pretrained(tmp)
                    save_provenance(tmp, checklist, dataset)
                    (tmp / "checklist_accuracy.json").write_text(
                        json.dumps(results, indent=2) + "\n"
                    )
            checkpoints.finish()
            log_table(
                logger,
                "checklist/test_accuracy",
                ["id", "dimension", "question", "accuracy"],
                [
                    [q.id, q.dimension, q.text, test.get(f"question/{q.text}")]
                    for q in checklist.questions
                ],
            )
        log.info(render(accuracy_table(checklist, test)))
        log.info("checklist model saved to %s", save_dir)
        return {**results, "save_dir": str(save_dir)}


def accuracy_table(checklist: Checklist, results: dict[str, float]) -> Table:
    table = Table(title="Held-out checklist accuracy against the oracle")
    table.add_column("dimension")
    table.add_column("questions", justify="right")
    table.add_column("accuracy", justify="right")
    for name in checklist.dimension_names:
        count = sum(q.dimension == name for q in checklist.questions)
        table.add_row(name, str(count), f"{results.get(f'dimension/{name}', float('nan')):.1%}")
    table.add_row(
        "mean over questions",
        str(len(checklist.questions)),
        f"{results.get('mean', float('nan')):.1%}",
    )
    return table
