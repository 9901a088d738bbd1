"""Stage ``train_checklist``: fine-tune the checklist VLM and save it as an HF folder."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger
from rich.table import Table

from vrexp.backbones import build_backbone
from vrexp.backbones.provenance import save_provenance
from vrexp.checklist import Checklist
from vrexp.data.visionrewarddb import checklist_data_module
from vrexp.modules import ChecklistModule
from vrexp.modules.trainer import build_trainer, checkpoint_callback
from vrexp.tracking import log_table, stage_logger
from vrexp.tracking.console import render

log = logging.getLogger(__name__)


def train_checklist(cfg: DictConfig, logger: Logger | None = None) -> dict[str, Any]:
    task = OmegaConf.to_object(cfg.task)
    dataset = OmegaConf.to_object(cfg.dataset)
    pl.seed_everything(cfg.seed, workers=True)
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
        processor=backbone.process,
        seed=cfg.seed,
    )
    module = ChecklistModule(backbone, checklist, task)
    save_dir = Path(task.save_dir or Path(cfg.paths.output_dir) / "checklist_model")
    with stage_logger(cfg, logger) as logger:
        checkpoint = checkpoint_callback(cfg)
        trainer = build_trainer(cfg, task, logger, callbacks=[checkpoint])
        trainer.fit(module, datamodule=data)
        best = "best" if checkpoint.best_model_path else None
        trainer.test(module, datamodule=data, ckpt_path=best)
        backbone.save_pretrained(save_dir)
        save_provenance(save_dir, checklist, dataset)
        test = module.results.get("test", {})
        results = {
            "test": test,
            "best_val_acc": float(checkpoint.best_model_score or 0),
            "steps": trainer.global_step,
        }
        (save_dir / "checklist_accuracy.json").write_text(json.dumps(results, indent=2) + "\n")
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
