"""Rewards built on checklist answers: the linear weighting, its non-negative fitting, and the
``VisionReward`` scorer that puts a checklist VLM in front of them."""

from vrexp.reward.fitting import (
    PairDifferences,
    fit_exact,
    fit_linear_reward,
    logistic_loss,
    pair_differences,
)
from vrexp.reward.linear import LinearReward, RewardError
from vrexp.reward.scorer import Comparison, RewardScores, VisionReward

__all__ = [
    "Comparison",
    "LinearReward",
    "PairDifferences",
    "RewardError",
    "RewardScores",
    "VisionReward",
    "fit_exact",
    "fit_linear_reward",
    "logistic_loss",
    "pair_differences",
]
