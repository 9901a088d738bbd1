"""``WeightModule``: the paper's Algorithm 1, "iterative regression with weight masking" (docs/method.md §4.4).

Logistic regression without intercept on pair feature differences ``ΔX`` (label 1 = first item
preferred), trained by plain SGD; after every epoch negative weights are zeroed (projection onto
``w >= 0``), and training stops once an epoch moves the weights by at most ``tol`` (or at the
trainer's ``max_epochs``). ``batch_size=1`` in the DataLoader is the paper's per-sample SGD; larger
batches trade that for speed. The exact solver is :func:`vrexp.reward.fitting.fit_exact`.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, TensorDataset

from vrexp.checklist import Checklist
from vrexp.configs.choices import Solver
from vrexp.configs.tasks import FitWeightsTaskConfig, SGDSettings
from vrexp.data.annotations import pair_answers
from vrexp.data.pairs import PreferencePairs
from vrexp.reward import LinearReward, RewardError, fit_linear_reward
from vrexp.reward.selection import question_subset


class WeightModule(pl.LightningModule):
    """Non-negative linear reward weights fitted by SGD with per-epoch projection.

    Args:
        num_features: length of the weight vector (feature questions of the checklist).
        settings: ``lr`` (the paper's alpha; its value is not given in the paper) and ``tol``
            (stop when ``||w - w_old||_2 <= tol`` between consecutive epochs, the paper's eps).
            The weights start at zero, the neutral choice (every pair starts at P = 0.5); the
            paper does not say how ``w`` is initialised.
    """

    def __init__(self, num_features: int, settings: SGDSettings) -> None:
        super().__init__()
        self.lr, self.tol = settings.lr, settings.tol
        self.save_hyperparameters({"num_features": num_features, "lr": self.lr, "tol": self.tol})
        self.weights = nn.Parameter(torch.zeros(num_features))
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
        if float(delta) <= self.tol:
            self.trainer.should_stop = True

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def fit_sgd(
    dx: np.ndarray,
    y: np.ndarray,
    settings: SGDSettings,
    *,
    seed: int = 0,
    logger: Any = False,
    num_threads: int | None = 1,
) -> np.ndarray:
    """The paper's Algorithm 1 via a real Lightning run of :class:`WeightModule`.

    ``settings.batch_size=1`` is the paper's per-sample SGD. ``logger`` is passed to the trainer
    (e.g. a ``WandbLogger``; ``False`` = none). ``num_threads`` caps torch's CPU threads during
    the run (restored after): a step here is a [B, F] x [F] product, and intra-op thread
    synchronisation made steps ~7x slower on a busy 2-core machine. Returns float64 weights.
    """
    dx_t = torch.as_tensor(np.asarray(dx), dtype=torch.float32)
    y_t = torch.as_tensor(np.asarray(y), dtype=torch.float32).ravel()
    if dx_t.ndim != 2 or y_t.shape != (dx_t.shape[0],):
        raise RewardError(
            f"dx must be [P, F] and y [P]; got {tuple(dx_t.shape)} and {tuple(y_t.shape)}"
        )
    pl.seed_everything(seed, workers=True, verbose=False)
    dataset = TensorDataset(dx_t, y_t)
    # Whole batches by index (TensorDataset slices tensors), not item-by-item collation. Shuffled:
    # the paper's per-epoch pass over D does not say in which order.
    sampler = BatchSampler(
        RandomSampler(dataset, generator=torch.Generator().manual_seed(seed)),
        batch_size=settings.batch_size,
        drop_last=False,
    )
    loader = DataLoader(dataset, sampler=sampler, batch_size=None)
    module = WeightModule(dx_t.shape[1], settings)
    trainer = pl.Trainer(
        accelerator="cpu",  # a [B, F] x [F] product: no accelerator is faster
        devices=1,
        max_epochs=settings.max_epochs,
        logger=logger,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=max(1, len(loader)),
    )
    threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        trainer.fit(module, loader)
    finally:
        torch.set_num_threads(threads)
    return module.weights.detach().cpu().double().numpy()


def fit_reward(
    checklist: Checklist,
    answers: tuple[np.ndarray, np.ndarray],
    label: np.ndarray,
    settings: FitWeightsTaskConfig,
    *,
    seed: int = 0,
    logger: Any = False,
) -> LinearReward:
    """Fit the weighting of ``checklist`` on the A and B answers of labelled pairs with the
    settings' encoding and solver (the exact one, or Algorithm 1 through :func:`fit_sgd`)."""
    solve = None
    if settings.solver == Solver.sgd:
        solve = partial(fit_sgd, settings=settings.sgd, seed=seed, logger=logger or False)
    return fit_linear_reward(
        checklist, *answers, label, encoding=settings.encoding, solve=solve, l2=settings.l2
    )


def fit_weighting(
    table: Any,
    checklist: Checklist,
    pairs: PreferencePairs,
    settings: FitWeightsTaskConfig,
    *,
    seed: int = 0,
    logger: Any = False,
) -> LinearReward:
    """``fit_weights``'s fit: the weighting of the annotated answers (``table``, annotate's) on
    ``pairs``, restricted first to the settings' question subset (Fig. 5)."""

    def fit_on(subset: Checklist, fit_logger: Any = False) -> LinearReward:
        answers = pair_answers(table, subset, pairs, settings.hard_answers)
        return fit_reward(subset, answers, pairs.label, settings, seed=seed, logger=fit_logger)

    return fit_on(question_subset(checklist, settings.questions, fit_on), logger)
