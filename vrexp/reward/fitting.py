"""Fitting non-negative linear reward weights from human preference pairs (docs/method.md §4.3-4.4).

This module owns the regression data (feature differences ``ΔX = X_a - X_b`` with ties dropped)
and the two solvers of the same problem, logistic regression without intercept under ``w >= 0``:

- :func:`fit_exact`: the bound-constrained optimum by L-BFGS-B on the mean log-loss (float64).
- the paper's Algorithm 1 (SGD + per-epoch zeroing of negative weights) is a Lightning run, so it
  lives with its module in :mod:`vrexp.modules.weights` (``fit_sgd``) and is passed in as ``solve``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from scipy.optimize import minimize
from scipy.special import expit

from vrexp.checklist import Checklist
from vrexp.reward.linear import Encoding, LinearReward, Masks, RewardError

Solve = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (dx [P, F], y [P]) -> w [F]
ArrayLike = np.ndarray | torch.Tensor


class PairDifferences(NamedTuple):
    """Regression data: ``dx`` [P, F] float64, ``y`` [P] in {0, 1}, ``kept`` [P] indices of the
    untied input pairs each row comes from."""

    dx: np.ndarray
    y: np.ndarray
    kept: np.ndarray


def pair_differences(
    reward_or_checklist: LinearReward | Checklist,
    answers_a: ArrayLike,
    answers_b: ArrayLike,
    labels: ArrayLike,
    *,
    encoding: Encoding = "pm1",
    alignment_a: ArrayLike | None = None,
    alignment_b: ArrayLike | None = None,
    masks: Masks | None = None,
) -> PairDifferences:
    """``ΔX = features(a) - features(b)`` (encoded, masks applied) for the untied pairs.

    ``labels`` > 0 means A preferred (y = 1), < 0 means B preferred (y = 0), 0 is a tie and the
    pair is dropped (tie handling is UNCONFIRMED in the paper; dropping is the presumed choice).
    Given a :class:`LinearReward`, its encoding and masks are used and ``encoding``/``masks`` are
    ignored; given a checklist, they define the features.
    """
    if isinstance(reward_or_checklist, LinearReward):
        reward = reward_or_checklist
    else:
        n = sum(q.kind != "presence" for q in reward_or_checklist.questions)
        reward = LinearReward(reward_or_checklist, np.zeros(n), encoding=encoding, masks=masks)
    labels = np.asarray(
        labels.cpu() if isinstance(labels, torch.Tensor) else labels, dtype=np.float64
    )
    xa = reward.features(
        _float64(answers_a), None if alignment_a is None else _float64(alignment_a)
    )
    xb = reward.features(
        _float64(answers_b), None if alignment_b is None else _float64(alignment_b)
    )
    if labels.shape != (xa.shape[0],) or xa.shape != xb.shape:
        raise RewardError(
            f"pairs need answers_a, answers_b of equal shape [P, Q] and labels [P]; got "
            f"{tuple(xa.shape)}, {tuple(xb.shape)} and {labels.shape}"
        )
    if np.isnan(labels).any():
        raise RewardError("labels contain NaN")
    kept = np.flatnonzero(labels != 0)
    dx = (xa - xb).cpu().numpy()[kept]
    return PairDifferences(dx=dx, y=(labels[kept] > 0).astype(np.float64), kept=kept)


def logistic_loss(
    w: np.ndarray, dx: np.ndarray, y: np.ndarray, l2: float = 0.0
) -> tuple[float, np.ndarray]:
    """Mean log-loss of ``sigmoid(dx @ w)`` against ``y`` (+ ``l2/2 * ||w||^2``) and its gradient."""
    z = dx @ w
    # log(1 + e^z) - y z is -[y log s(z) + (1-y) log(1-s(z))], overflow-free via logaddexp.
    loss = float(np.mean(np.logaddexp(0.0, z) - y * z)) + 0.5 * l2 * float(w @ w)
    grad = dx.T @ (expit(z) - y) / len(y) + l2 * w
    return loss, grad


def fit_exact(
    dx: np.ndarray,
    y: np.ndarray,
    *,
    l2: float = 0.0,
    tol: float = 1e-10,
    max_iter: int = 15000,
) -> np.ndarray:
    """Non-negative logistic regression without intercept: argmin_{w >= 0} mean log-loss.

    L-BFGS-B with the analytic gradient in float64. ``l2`` adds ``l2/2 * ||w||^2`` (0 = the
    paper's unregularised fit). Warns if the optimiser stops without converging (e.g. separable
    data without ``l2``, where the optimum is at infinity).
    """
    dx = np.ascontiguousarray(dx, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).ravel()
    if dx.ndim != 2 or y.shape != (dx.shape[0],):
        raise RewardError(f"dx must be [P, F] and y [P]; got {dx.shape} and {y.shape}")
    if not np.isin(y, (0.0, 1.0)).all():
        raise RewardError("y must hold 0/1 labels (1 = first item preferred)")
    if not np.isfinite(dx).all():
        raise RewardError("dx contains NaN or infinite values")
    n_features = dx.shape[1]
    result = minimize(
        logistic_loss,
        np.zeros(n_features),
        args=(dx, y, l2),
        method="L-BFGS-B",
        jac=True,
        bounds=[(0.0, None)] * n_features,
        options={"maxiter": max_iter, "ftol": 1e-15, "gtol": tol, "maxcor": 20},
    )
    if not result.success:
        warnings.warn(f"fit_exact did not converge: {result.message}", stacklevel=2)
    return np.maximum(result.x, 0.0)


def fit_linear_reward(
    checklist: Checklist,
    answers_a: ArrayLike,
    answers_b: ArrayLike,
    labels: ArrayLike,
    *,
    encoding: Encoding = "pm1",
    solve: Solve | None = None,
    masks: Masks | None = None,
    alignment_a: ArrayLike | None = None,
    alignment_b: ArrayLike | None = None,
    l2: float = 0.0,
) -> LinearReward:
    """Fit non-negative weights on preference pairs and wrap them as a (sum) :class:`LinearReward`.

    ``solve(dx, y) -> w`` is the solver; the default is :func:`fit_exact` with ``l2``.
    """
    pairs = pair_differences(
        checklist,
        answers_a,
        answers_b,
        labels,
        encoding=encoding,
        alignment_a=alignment_a,
        alignment_b=alignment_b,
        masks=masks,
    )
    if len(pairs.y) == 0:
        raise RewardError("every pair is a tie; nothing to fit")
    if solve is None:
        weights = fit_exact(pairs.dx, pairs.y, l2=l2)
    else:
        if l2:
            raise RewardError("l2 is only implemented for the exact solver")
        weights = np.asarray(solve(pairs.dx, pairs.y), dtype=np.float64)
    return LinearReward(checklist, weights, encoding=encoding, masks=masks)


def _float64(x: ArrayLike) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    return t.to(torch.float64)
