"""``ChecklistModule``: supervised fine-tuning of a checklist VLM on yes/no answers.

A training batch is packed: each item's media is encoded once and all of its drawn questions are
read against that prefix (:meth:`ChecklistBackbone.suffix_logits`), so the cost of a step grows with
the number of items far more than with the number of questions. The loss is binary cross-entropy on
the yes/no log-odds, a weighted mean when questions carry loss weights (``task.loss_weights``).
Validation and test answer every applicable question of every item and report per-question and
per-dimension accuracy.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from vrexp.backbones import ChecklistBackbone
from vrexp.checklist import Checklist
from vrexp.configs.training import BackboneOptimSettings
from vrexp.metrics import PerQuestionAccuracy
from vrexp.modules.distributed import global_mean
from vrexp.modules.optim import backbone_optimizer, settings_hparams


class ChecklistModule(pl.LightningModule):
    def __init__(
        self,
        backbone: ChecklistBackbone,
        checklist: Checklist,
        optim: BackboneOptimSettings,
        loss_weights: dict[str, float] | None = None,
    ) -> None:
        super().__init__()
        self.optim = optim
        self.save_hyperparameters(settings_hparams(optim))
        self.backbone = backbone
        self.checklist = checklist
        self.question_dimension = torch.from_numpy(checklist.question_dimension())
        # Not a buffer: a checkpoint of weighted training loads into an unweighted module.
        self.question_loss_weight = torch.from_numpy(
            checklist.question_weights(loss_weights or {}, key="task.loss_weights")
        )
        self.val_accuracy = PerQuestionAccuracy(len(checklist.questions))
        self.test_accuracy = PerQuestionAccuracy(len(checklist.questions))
        self.results: dict[str, dict[str, float]] = {}

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        prefix = self.backbone.encode_prefix(batch["media"], batch.get("processed"))
        suffixes = [self.backbone.question_text(q) for qs in batch["questions"] for q in qs]
        return self.backbone.suffix_logits(prefix, batch["item"].to(self.device), suffixes)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        logits = self(batch)
        labels = batch["labels"].to(logits.device)
        # A rank's filler item (weight 0) keeps the ranks in step and adds nothing.
        weights = batch.get("weights", torch.ones_like(labels)).to(logits.device)
        weighted = weights * self.question_loss_weight[batch["question_index"]].to(logits.device)
        bce = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
        loss, mean_loss = global_mean(self, (bce * weighted).sum(), weighted.sum())
        hits = ((logits > 0).float() == labels).float()
        _, accuracy = global_mean(self, (hits * weights).sum(), weights.sum())
        size = len(batch["media"])
        self.log("train/loss", mean_loss, prog_bar=True, batch_size=size)
        self.log("train/acc", accuracy, prog_bar=True, batch_size=size)
        self.log("train/questions_per_step", float(weights.sum()), batch_size=size)
        return loss

    def _evaluate(self, batch: dict[str, Any], metric: PerQuestionAccuracy) -> None:
        keep = batch.get("weights", torch.ones_like(batch["labels"])) > 0
        p_yes = torch.sigmoid(self(batch))
        # The metric moves its inputs to its own device (predictions may be on a GPU, labels not).
        metric.update(
            p_yes[keep.to(p_yes.device)], batch["labels"][keep], batch["question_index"][keep]
        )

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, self.val_accuracy)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, self.test_accuracy)

    def _report(self, stage: str, metric: PerQuestionAccuracy) -> None:
        per_question = metric.compute()
        per_dimension = metric.per_group(self.question_dimension, len(self.checklist.dimensions))
        mean = torch.nanmean(per_question)
        self.log(f"{stage}/acc", mean, prog_bar=True)
        for name, value in zip(self.checklist.dimension_names, per_dimension, strict=True):
            if not torch.isnan(value):
                self.log(f"{stage}/acc/{name}", value)
        for question, value in zip(self.checklist.questions, per_question, strict=True):
            if not torch.isnan(value):
                self.log(f"{stage}/acc_question/{question.id:03d}", value)
        self.results[stage] = {
            "mean": float(mean),
            **{
                f"dimension/{n}": float(v)
                for n, v in zip(self.checklist.dimension_names, per_dimension, strict=True)
            },
            **{
                f"question/{q.text}": float(v)
                for q, v in zip(self.checklist.questions, per_question, strict=True)
            },
        }
        metric.reset()

    def on_validation_epoch_end(self) -> None:
        self._report("val", self.val_accuracy)

    def on_test_epoch_end(self) -> None:
        self._report("test", self.test_accuracy)

    def configure_optimizers(self) -> dict[str, Any]:
        return backbone_optimizer(self, self.backbone, self.optim)
