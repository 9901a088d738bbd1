"""DPO pair selection among K candidates per prompt, vectorised over [prompts, K, dimensions].

``total`` is ordinary DPO: the winner's total reward (the sum of its dimension scores, paper
Eq. 6) beats the loser's by at least ``threshold``. ``mpo`` adds multi-dimensional dominance
(docs/method.md §7.1): the winner is at least as good on *every* dimension (non-strict), or with
``epsilon`` > 0 trails the loser by at most ``epsilon`` on any one (epsilon-dominance: among few
candidates exact dominance is rare, and a dimension the reward scores noisily then decides
which pairs survive). The granularity
(dimension, sub-dimension or question) is whatever the last axis of the scores holds.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vrexp.configs.choices import PairRule

RULES = tuple(PairRule.values())


def _validate(dim_scores: Tensor) -> Tensor:
    if not isinstance(dim_scores, Tensor) or dim_scores.ndim != 3:
        shape = tuple(dim_scores.shape) if isinstance(dim_scores, Tensor) else type(dim_scores)
        raise ValueError(
            f"dim_scores must be a [prompts, candidates, dimensions] tensor, got {shape}"
        )
    if not dim_scores.is_floating_point():
        dim_scores = dim_scores.double()
    bad = ~torch.isfinite(dim_scores)
    if bad.any():
        p, k, d = (int(i) for i in bad.nonzero()[0])
        raise ValueError(f"dim_scores is not finite at prompt {p}, candidate {k}, dimension {d}")
    return dim_scores


def _by_total(dim_scores: Tensor, threshold: float) -> Tensor:
    """[P, K, K]: winner i (axis 1) beats loser j (axis 2) on total reward by >= ``threshold``."""
    total = dim_scores.sum(-1)
    gap = total[:, :, None] - total[:, None, :]
    # A pair needs a strictly better total, so equal candidates never form a pair either way.
    return (gap > 0) & (gap >= threshold)


def _dominates(dim_scores: Tensor, epsilon: float = 0.0) -> Tensor:
    """[P, K, K]: candidate i trails candidate j by at most ``epsilon`` on every dimension (at
    ``epsilon`` 0: is at least as good on every one)."""
    return (dim_scores[:, :, None, :] + epsilon >= dim_scores[:, None, :, :]).all(-1)


def _check(name: str, value: float) -> None:
    if not value >= 0:  # NaN too: a negative value would keep pairs the loser wins
        raise ValueError(f"dpo.{name}={value!r} must be >= 0")


def select_pairs(
    dim_scores: Tensor, rule: PairRule = "mpo", threshold: float = 0.0, epsilon: float = 0.0
) -> Tensor:
    """[M, 3] long rows (prompt, winner, loser) of the pairs that ``rule`` keeps, in row-major
    order of (prompt, winner, loser). ``dim_scores`` is [P, K, D]: D sub-scores of K candidates
    for each of P prompts; ``epsilon`` is MPO's tolerance per dimension."""
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    _check("threshold", threshold)
    _check("epsilon", epsilon)
    dim_scores = _validate(dim_scores)
    keep = _by_total(dim_scores, threshold)
    if rule == "mpo":  # the [P, K, K, D] comparison only where it is needed
        keep &= _dominates(dim_scores, epsilon)
    return keep.nonzero()


def dominance_statistics(dim_scores: Tensor, threshold: float = 0.0) -> dict[str, float]:
    """Paper Table 5: of the pairs the total-score rule picks, how many the winner dominates
    (exactly: the paper's count, whatever MPO's ``epsilon``)."""
    dim_scores = _validate(dim_scores)
    by_total = _by_total(dim_scores, threshold)
    total_pairs = int(by_total.sum())
    dominating = int((by_total & _dominates(dim_scores)).sum())
    return {
        "total_rule_pairs": total_pairs,
        "dominating": dominating,
        "non_dominating": total_pairs - dominating,
        "dominating_fraction": dominating / total_pairs if total_pairs else float("nan"),
    }
