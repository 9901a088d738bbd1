"""``WeightModule``: the paper's Algorithm 1, "iterative regression with weight masking" (PAPER §4.2).

Logistic regression without intercept on pair feature differences ``ΔX`` (label 1 = first item
preferred), trained by plain SGD; after every epoch negative weights are zeroed (projection onto
``w >= 0``), and training stops once an epoch moves the weights by at most ``tol`` (or at the
trainer's ``max_epochs``). ``batch_size=1`` in the DataLoader is the paper's per-sample SGD; larger
batches trade that for speed. The exact solver is :func:`vrexp.reward.fitting.fit_exact`.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn


class WeightModule(pl.LightningModule):
    """Non-negative linear reward weights fitted by SGD with per-epoch projection.

    Args:
        num_features: length of the weight vector (feature questions of the checklist).
        lr: SGD learning rate (the paper's alpha; its value is UNCONFIRMED in the paper).
        init: initial value of every weight. The paper does not say how ``w`` is initialised
            (UNCONFIRMED); zeros are the neutral choice (every pair starts at P = 0.5).
        tol: stop when ``||w - w_old||_2 <= tol`` between consecutive epochs (the paper's eps,
            UNCONFIRMED).
    """

    def __init__(
        self, num_features: int, *, lr: float = 0.05, init: float = 0.0, tol: float = 1e-4
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.weights = nn.Parameter(torch.full((num_features,), float(init)))
        self._w_old: torch.Tensor | None = None
        self._loss_sum = torch.zeros(())
        self._loss_count = 0

    def forward(self, dx: torch.Tensor) -> torch.Tensor:
        """[B, F] feature differences -> [B] log-odds that the first item is preferred."""
        return dx.to(self.weights.dtype) @ self.weights

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        dx, y = batch
        loss = F.binary_cross_entropy_with_logits(self(dx), y.to(self.weights.dtype))
        # Epoch-level loss, accumulated here rather than by a per-step self.log: at batch size 1
        # per-step logging would flood the logger, and its bookkeeping dominates a step this small.
        self._loss_sum = self._loss_sum.to(loss.device) + loss.detach() * len(y)
        self._loss_count += len(y)
        return loss

    def on_train_epoch_start(self) -> None:
        self._w_old = self.weights.detach().clone()
        self._loss_sum = torch.zeros((), device=self.weights.device)
        self._loss_count = 0

    def on_train_epoch_end(self) -> None:
        with torch.no_grad():
            self.weights.clamp_(min=0.0)  # Algorithm 1: mask negative weights after every epoch
            delta = torch.linalg.vector_norm(self.weights - self._w_old)
        if self._loss_count:
            self.log("train/loss", self._loss_sum / self._loss_count)
        self.log("weights/delta_norm", delta)
        self.log("weights/num_zero", (self.weights == 0).sum().to(torch.float32))
        if float(delta) <= self.hparams.tol:
            self.trainer.should_stop = True

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)
