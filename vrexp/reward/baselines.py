"""Baselines that ``evaluate`` compares VisionReward with, on the same backbone and pairs.

Each maps to a score difference on the test pairs. ``alignment`` (the alignment questions alone,
weighted on the same pairs) is a linear reward and lives here; ``bt_head`` and
``generic_question`` train the backbone on the pairs (:mod:`vrexp.modules.pairwise`).
"""

from __future__ import annotations

from typing import Any

import torch

from vrexp.configs.choices import Baseline
from vrexp.data.annotations import pair_answers
from vrexp.data.pairs import PreferencePairs
from vrexp.reward.fitting import fit_linear_reward
from vrexp.reward.linear import LinearReward, RewardError

ALIGNMENT = "Alignment"
# The pairwise baselines' reward heads (see PairwiseRewardModule).
PAIRWISE_HEADS = {Baseline.bt_head: "scalar", Baseline.generic_question: "question"}


def alignment_baseline(
    reward: LinearReward, table: Any, train: PreferencePairs, test: PreferencePairs, hard: bool
) -> torch.Tensor:
    """Score differences on ``test`` of the alignment questions alone, weighted on ``train``."""
    checklist = reward.checklist
    if ALIGNMENT not in checklist.dimension_names:
        raise RewardError(
            f"the alignment baseline needs a dimension named {ALIGNMENT!r}; checklist "
            f"{checklist.name!r} has {checklist.dimension_names}"
        )
    aligned = checklist.without([d for d in checklist.dimension_names if d != ALIGNMENT])
    a, b = pair_answers(table, aligned, train, hard)
    fitted = fit_linear_reward(aligned, a, b, train.label, encoding=reward.encoding)
    a, b = pair_answers(table, aligned, test, hard)
    return fitted.score(a) - fitted.score(b)
