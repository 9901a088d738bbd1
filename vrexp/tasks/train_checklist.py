"""Stage ``train_checklist``: fine-tune the checklist VLM and save it as an HF folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import Logger
from rich.console import Console
from rich.table import Table

from vrexp.backbones import ChecklistBackbone, build_backbone
from vrexp.checklist import Checklist
from vrexp.data.checklist_data import ChecklistDataModule
from vrexp.data.synthworld import ensure_split
from vrexp.modules import ChecklistModule
from vrexp.tracking import log_table, stage_logger


def train_checklist(cfg: DictConfig, logger: Logger | None = None) -> dict[str, Any]:
    task = cfg.task
    pl.seed_everything(cfg.seed, workers=True)
    checklist = Checklist.from_config(cfg.dimensions)
    split_dir = ensure_split(OmegaConf.to_object(cfg.dataset), checklist)
    backbone = build_backbone(OmegaConf.to_object(cfg.backbone))
    data = ChecklistDataModule(
        split_dir,
        checklist,
        batch_size=task.batch_size,
        val_fraction=task.val_fraction,
        test_fraction=task.test_fraction,
        balanced=task.balanced,
        questions_per_item=task.questions_per_item,
        processor=backbone.process,
        seed=cfg.seed,
    )
    module = ChecklistModule(
        backbone,
        checklist,
        lr=task.lr,
        weight_decay=task.weight_decay,
        warmup_steps=task.warmup_steps,
        vision_lr_scale=task.vision_lr_scale,
    )
    with stage_logger(cfg, logger) as logger:
        return _fit(cfg, task, checklist, backbone, data, module, logger)


def _fit(
    cfg: DictConfig,
    task: DictConfig,
    checklist: Checklist,
    backbone: ChecklistBackbone,
    data: ChecklistDataModule,
    module: ChecklistModule,
    logger: Logger | None,
) -> dict[str, Any]:
    checkpoint = ModelCheckpoint(
        dirpath=Path(cfg.paths.output_dir) / "checkpoints",
        monitor="val/acc",
        mode="max",
        save_last=True,
    )
    limits = {k: task[k] for k in ("max_epochs", "max_time") if task[k] is not None}
    if task.max_steps != -1:
        limits["max_steps"] = task.max_steps
    trainer = instantiate(
        cfg.trainer,
        logger=logger if logger is not None else False,
        callbacks=[checkpoint],
        **limits,
    )
    trainer.fit(module, datamodule=data)
    trainer.test(module, datamodule=data, ckpt_path="best" if checkpoint.best_model_path else None)
    save_dir = Path(task.save_dir)
    backbone.save_pretrained(save_dir)
    checklist.to_yaml(save_dir / "checklist.yaml")
    results = {
        "test": module.results.get("test", {}),
        "best_val_acc": float(checkpoint.best_model_score or 0),
    }
    (save_dir / "checklist_accuracy.json").write_text(json.dumps(results, indent=2) + "\n")
    log_table(
        logger,
        "checklist/test_accuracy",
        ["id", "dimension", "question", "accuracy"],
        [
            [q.id, q.dimension, q.text, results["test"].get(f"question/{q.text}")]
            for q in checklist.questions
        ],
    )
    print_accuracy(Console(), checklist, module.results.get("test", {}), save_dir)
    return results


def print_accuracy(
    console: Console, checklist: Checklist, results: dict[str, float], save_dir: Path
) -> None:
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
    console.print(table)
    console.print(f"checklist model saved to {save_dir}")
