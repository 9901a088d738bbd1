"""``PairwiseRewardModule``: scalar rewards trained with the Bradley-Terry loss on preference pairs.

These are the "black-box" baselines of the evaluation (docs/method.md §6.4): the same backbone and the
same pairs as VisionReward's weighting, but one opaque number per item instead of a checklist.

- ``head="scalar"``: a linear head on the final hidden state of the item's prompt read after its
  media (ImageReward / VideoScore style).
- ``head="question"``: the backbone's own yes/no log-odds for one generic question ("Is this a
  high-quality image that matches the prompt?"), fine-tuned on the same pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from vrexp.backbones import ChecklistBackbone
from vrexp.checklist.prompting import fill_prompt, sanitize_prompt
from vrexp.configs.tasks import BaselineTraining
from vrexp.data.pairs import PairDataModule, PreferencePairs
from vrexp.media import Clip, load_for_model
from vrexp.modules.distributed import global_mean
from vrexp.modules.optim import backbone_optimizer, settings_hparams
from vrexp.modules.resume import TrainingCheckpoints

RewardHead = Literal["scalar", "question"]


class PairwiseRewardModule(pl.LightningModule):
    def __init__(
        self,
        backbone: ChecklistBackbone,
        settings: BaselineTraining,
        *,
        head: RewardHead = "scalar",
        log_prefix: str = "pairwise",
    ) -> None:
        super().__init__()
        if head not in ("scalar", "question"):
            raise ValueError(f"head must be 'scalar' or 'question', got {head!r}")
        self.settings, self.log_prefix = settings, log_prefix
        self.save_hyperparameters({**settings_hparams(settings), "head": head})
        self.backbone = backbone
        hidden = backbone.base_model.get_output_embeddings().weight.shape[1]
        self.head = nn.Linear(hidden, 1) if head == "scalar" else None

    def _suffix(self, prompt: str) -> str:
        if self.head is not None:
            return self.backbone.question_text(sanitize_prompt(prompt))
        return self.backbone.question_text(fill_prompt(self.settings.question, prompt))

    def reward(self, media: Sequence[np.ndarray | Clip], prompts: Sequence[str]) -> torch.Tensor:
        """[B] reward of each (media, prompt)."""
        prefix = self.backbone.encode_prefix(media)
        item = torch.arange(len(media), device=self.device)
        hidden = self.backbone.suffix_hidden(prefix, item, [self._suffix(p) for p in prompts])
        if self.head is not None:
            return self.head(hidden.to(self.head.weight.dtype)).squeeze(-1).float()
        return self.backbone.yes_no_log_odds(self.backbone.answer_head(hidden))

    def _pair_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(the loss to train on, its global mean, the global accuracy) over the batch's pairs
        (under DDP: over the global batch; a rank's filler pair has weight 0)."""
        n = len(batch["media_a"])
        rewards = self.reward(
            batch["media_a"] + batch["media_b"], batch["prompt_a"] + batch["prompt_b"]
        )
        margin = (rewards[:n] - rewards[n:]) * batch["label"].to(rewards.device)
        weight = batch.get("weight", torch.ones(n)).to(rewards.device)
        loss, mean = global_mean(self, (-F.logsigmoid(margin) * weight).sum(), weight.sum())
        _, accuracy = global_mean(self, ((margin > 0).float() * weight).sum(), weight.sum())
        return loss, mean, accuracy

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss, mean, accuracy = self._pair_loss(batch)
        size = len(batch["media_a"])
        self.log(f"{self.log_prefix}/train/loss", mean, prog_bar=True, batch_size=size)
        self.log(f"{self.log_prefix}/train/acc", accuracy, prog_bar=True, batch_size=size)
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        # Every rank validates on all val pairs (the loader is not sharded): the same values.
        _, loss, accuracy = self._pair_loss(batch)
        size = len(batch["media_a"])
        self.log(f"{self.log_prefix}/val/loss", loss, batch_size=size)
        self.log(f"{self.log_prefix}/val/acc", accuracy, prog_bar=True, batch_size=size)

    def configure_optimizers(self) -> dict[str, Any]:
        return backbone_optimizer(self, self.backbone, self.settings)


def pairwise_baseline_delta(
    module: PairwiseRewardModule,
    trainer: pl.Trainer,
    parts: dict[str, PreferencePairs],
    test: PreferencePairs,
    records: dict[int, tuple[Path, str]],
    *,
    seed: int,
    checkpoints: TrainingCheckpoints | None = None,
) -> torch.Tensor:
    """Train ``module`` on ``parts`` (train, val), resuming from ``checkpoints`` (those that
    ``trainer`` was built with), and return its reward differences on ``test``."""
    settings = module.settings
    frames = module.backbone.config.frames
    data = PairDataModule(
        parts,
        records,
        frames=frames,
        batch_size=settings.batch_size,
        seed=seed,
        cache_mib=settings.cache_mib,
    )
    if checkpoints is not None:
        checkpoints.fit(trainer, module, datamodule=data)
    else:
        trainer.fit(module, datamodule=data)
    module.eval()
    items = test.item_ids
    rewards = {}
    with torch.inference_mode():
        for start in range(0, len(items), settings.batch_size):
            chunk = items[start : start + settings.batch_size]
            media = [load_for_model(records[int(i)][0], frames) for i in chunk]
            values = module.reward(media, [records[int(i)][1] for i in chunk])
            rewards.update(zip(chunk.tolist(), values.double().cpu().tolist(), strict=True))
    score = np.array(
        [rewards[int(a)] - rewards[int(b)] for a, b in zip(test.item_a, test.item_b, strict=True)]
    )
    return torch.from_numpy(score)
