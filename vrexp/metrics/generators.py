"""Comparing generators sample by sample: the paired statistics of one generator against
another on the same held-out prompts and noise.

Every generator of one evaluation samples the same (prompt, noise seed) rows, so two generators
are compared sample by sample: win rates and mean differences with bootstrap intervals that
resample whole prompts (:func:`~vrexp.metrics.preference.win_rate`,
:func:`~vrexp.metrics.preference.mean_difference`). On SynthWorld the oracle also says how each
factor of the world moved, so "which dimensions improved" is answered by the truth as well as by
the reward. The judged samples' file is :mod:`vrexp.reports.eval_samples`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vrexp.metrics.preference import mean_difference, win_rate

REWARD = "reward"
UTILITY = "oracle_utility"
DIMENSION_PREFIX = "reward/"
FACTOR_PREFIX = "oracle/"


@dataclass
class JudgedSamples:
    """One generator's samples of an evaluation: the reward's total and per-dimension scores, and
    on SynthWorld the oracle utility and per-factor qualities, all [N] in the evaluation's row
    order (the rows themselves are the evaluation's, shared by all its generators)."""

    total: np.ndarray
    dimensions: dict[str, np.ndarray]
    utility: np.ndarray | None = None
    qualities: dict[str, np.ndarray] | None = None

    def columns(self) -> dict[str, np.ndarray]:
        """Every score by its column name: ``reward``, ``reward/<dimension>``, and on SynthWorld
        ``oracle_utility`` and ``oracle/<factor>``."""
        out = {REWARD: self.total}
        out |= {f"{DIMENSION_PREFIX}{k}": v for k, v in self.dimensions.items()}
        if self.utility is not None:
            out[UTILITY] = self.utility
        if self.qualities is not None:
            out |= {f"{FACTOR_PREFIX}{k}": v for k, v in self.qualities.items()}
        return out


def _significant(
    ours: dict[str, np.ndarray], other: dict[str, np.ndarray], groups: np.ndarray, resamples: int
) -> tuple[dict[str, float], list[str], list[str]]:
    """Each key's mean difference, and the keys whose paired interval lies above / below zero."""
    delta, up, down = {}, [], []
    for key in ours:
        difference, low, high = mean_difference(
            ours[key], other[key], groups, num_resamples=resamples
        )
        delta[key] = difference
        if low > 0:
            up.append(key)
        elif high < 0:
            down.append(key)
    return delta, up, down


def compare(
    ours: JudgedSamples, other: JudgedSamples, groups: np.ndarray, *, num_resamples: int = 1000
) -> dict[str, Any]:
    """``ours`` against ``other`` sample by sample: the reward's win rate; on SynthWorld the
    oracle's win rate and mean utility gain with their paired 95% intervals, and the factors whose
    quality rose (``oracle_up``) or fell (``oracle_down``) with the interval clear of zero."""
    out: dict[str, Any] = {
        "reward_win_rate": win_rate(ours.total, other.total, groups, num_resamples=num_resamples)[0]
    }
    if ours.utility is None or other.utility is None:
        return out
    rate, low, high = win_rate(ours.utility, other.utility, groups, num_resamples=num_resamples)
    gain, gain_low, gain_high = mean_difference(
        ours.utility, other.utility, groups, num_resamples=num_resamples
    )
    out |= {
        "oracle_win_rate": rate,
        "oracle_win_low": low,
        "oracle_win_high": high,
        "oracle_gain": gain,
        "oracle_gain_low": gain_low,
        "oracle_gain_high": gain_high,
    }
    if ours.qualities is not None and other.qualities is not None:
        delta, up, down = _significant(ours.qualities, other.qualities, groups, num_resamples)
        out |= {
            "oracle_up": ", ".join(up),
            "oracle_down": ", ".join(down),
            "oracle_factors_down": len(down),
            **{f"oracle_delta/{k}": v for k, v in delta.items()},
        }
    return out


def summary(samples: JudgedSamples) -> dict[str, float]:
    """A generator's means: the reward and its dimensions; the oracle utility and factors."""
    return {k: float(np.mean(v)) for k, v in samples.columns().items()}


def head_to_head(
    generators: dict[str, JudgedSamples], groups: np.ndarray, *, num_resamples: int = 1000
) -> list[dict[str, Any]]:
    """Every later generator against every earlier one (``generator`` over ``against``), in the
    order given: the rows of a head-to-head table."""
    names = list(generators)
    rows = []
    for j, name in enumerate(names):
        for other in names[:j]:
            rows.append(
                {
                    "generator": name,
                    "against": other,
                    **compare(
                        generators[name], generators[other], groups, num_resamples=num_resamples
                    ),
                }
            )
    return rows
