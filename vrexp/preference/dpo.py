"""The Diffusion-DPO loss (Wallace et al. 2024; docs/method.md §7.2) on noise, v or flow predictions."""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor


def diffusion_dpo_loss(
    model_pred: Tensor,
    ref_pred: Tensor,
    target: Tensor,
    beta: float,
    reduction: Literal["mean", "none"] = "mean",
) -> tuple[Tensor, Tensor]:
    """(loss, implicit accuracy) of a batch of 2B predictions: winners first, then their losers,
    each pair under the same noise and timestep.

    Per-sample squared errors are meaned over the non-batch dims; the loss is
    ``-logsigmoid(-0.5 * beta * ((mse_w - ref_mse_w) - (mse_l - ref_mse_l)))``, meaned. The
    implicit accuracy counts the pairs where the model moved towards the winner more than the
    reference did (an exact tie counts half). ``ref_pred`` gets no gradient. With
    ``reduction="none"`` both come per pair ([B]), for a weighted or cross-rank mean.
    """
    if not model_pred.shape == ref_pred.shape == target.shape:
        raise ValueError(
            f"model_pred, ref_pred and target must share a shape, got {tuple(model_pred.shape)}, "
            f"{tuple(ref_pred.shape)} and {tuple(target.shape)}"
        )
    if model_pred.ndim < 2 or model_pred.shape[0] % 2:
        raise ValueError(
            f"the batch must hold winners then losers (an even size 2B), got {tuple(model_pred.shape)}"
        )
    dims = tuple(range(1, model_pred.ndim))
    target = target.float()
    mse = (model_pred.float() - target).pow(2).mean(dims)
    ref_mse = (ref_pred.detach().float() - target).pow(2).mean(dims)
    model_w, model_l = mse.chunk(2)
    ref_w, ref_l = ref_mse.chunk(2)
    inside = -0.5 * beta * ((model_w - ref_w) - (model_l - ref_l))
    loss = -F.logsigmoid(inside)
    accuracy = (inside > 0).float() + 0.5 * (inside == 0).float()
    if reduction == "none":
        return loss, accuracy
    return loss.mean(), accuracy.mean()
