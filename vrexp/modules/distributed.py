"""What a training step computes across ranks, so that DDP trains what a single process would.

Under DDP every rank holds its interleaved share of the global batch (``vrexp.ranks.rank_slice``;
rank ``r`` has rows ``r, r + W, ...``) and the strategy averages the ranks' gradients. Two things
would still differ from one process holding the whole batch:

- a mean over a rank's own share is not the mean over the global batch when the shares differ in
  size (packed checklist items carry different numbers of questions; the last batch of an epoch
  splits unevenly). :func:`global_mean` scales each rank's sum so that the averaged gradient is the
  gradient of the global mean, and returns that mean for logging, equal on every rank;
- random draws (noise, timesteps, prompt dropout) made for a rank's share alone would repeat the
  same values on every rank. :func:`rank_draw` draws for the global batch, in the single process's
  order, and keeps this rank's rows.

With one process both are the plain mean and the plain draw.
"""

from __future__ import annotations

from collections.abc import Callable

import pytorch_lightning as pl
import torch


def _world(module: pl.LightningModule) -> tuple[int, int]:
    trainer = module._trainer  # None outside a Trainer: one process
    if trainer is None or trainer.world_size == 1:
        return 1, 0
    return trainer.world_size, trainer.global_rank


def _sum(module: pl.LightningModule, values: torch.Tensor) -> torch.Tensor:
    return module.trainer.strategy.reduce(values, reduce_op="sum")


def global_mean(
    module: pl.LightningModule, total: torch.Tensor, count: torch.Tensor | float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(the loss to return from ``training_step``, the global mean to log) of a mean whose
    numerator on this rank is ``total`` over ``count`` terms."""
    count = torch.as_tensor(count, dtype=torch.float32, device=total.device)
    world, _ = _world(module)
    if world == 1:
        mean = total / count
        return mean, mean.detach()
    both = _sum(module, torch.stack([total.detach().float(), count]))
    return total * (world / both[1]), both[0] / both[1]


def global_count(module: pl.LightningModule, count: int) -> int:
    """The global batch's size, from this rank's ``count``."""
    world, _ = _world(module)
    if world == 1:
        return count
    return int(_sum(module, torch.tensor(float(count), device=module.device)).item())


def rank_draw(
    module: pl.LightningModule, count: int, draw: Callable[[int], torch.Tensor]
) -> torch.Tensor:
    """``draw(n)`` (n values along the first axis, from the global generators) for this rank's
    ``count`` rows: drawn for the whole global batch on every rank, this rank's rows kept."""
    world, rank = _world(module)
    if world == 1:
        return draw(count)
    total = global_count(module, count)
    values = draw(total)[rank::world]
    if len(values) != count:
        raise RuntimeError(
            f"rank {rank} holds {count} rows of a global batch of {total}, not its interleaved "
            "share: its loader is not sharded with vrexp.ranks.rank_slice"
        )
    return values
