"""SynthWorld's hidden human preference: a utility over factor qualities, and labelled pairs.

The utility is a positive weighting of per-factor qualities plus an interaction term (a bonus when
the media is both well aligned and sharp), so a linear reward on checklist answers fits it well but
not perfectly. Each pair judgement adds Gaussian noise; the smallest ``tie_fraction`` of absolute
differences are labelled ties, so the tie rate is exactly the configured one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from vrexp.data.synthworld.oracle import measure
from vrexp.data.synthworld.world import FACTORS, quality

INTERACTION_FACTORS = ("alignment", "clarity")


def check_weights(weights: Mapping[str, float], media: str) -> None:
    keys = {f.key for f in FACTORS[media]}
    missing, extra = keys - set(weights), set(weights) - keys
    if missing or extra:
        raise ValueError(
            f"utility weights for the {media} world must name exactly its factors {sorted(keys)}; "
            f"missing {sorted(missing)}, unknown {sorted(extra)}"
        )
    bad = {k: v for k, v in weights.items() if not (v > 0)}
    if bad:
        raise ValueError(f"utility weights must be positive, got {bad}")


def utility(
    levels: Sequence[Mapping[str, int]],
    media: str,
    weights: Mapping[str, float],
    interaction: float,
) -> np.ndarray:
    """[N] noiseless utility of items given their factor levels."""
    check_weights(weights, media)
    keys = [f.key for f in FACTORS[media]]
    q = np.array([[quality(lv, media)[k] for k in keys] for lv in levels], dtype=np.float64)
    w = np.array([weights[k] for k in keys])
    a, c = (keys.index(k) for k in INTERACTION_FACTORS)
    return q @ w + interaction * q[:, a] * q[:, c]


def label_pairs(
    utilities: np.ndarray,
    pairs: np.ndarray,
    noise: float,
    tie_fraction: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Noisy judgements for item-index ``pairs`` [P, 2].

    Returns ``(delta, preference)``: the judged utility difference A - B and the label, +1 when A is
    preferred, -1 when B is, 0 for a tie.
    """
    if not 0.0 <= tie_fraction < 1.0:
        raise ValueError(f"tie_fraction must be in [0, 1), got {tie_fraction}")
    delta = utilities[pairs[:, 0]] - utilities[pairs[:, 1]] + rng.normal(0.0, noise, len(pairs))
    preference = np.sign(delta).astype(np.int8)
    num_ties = round(tie_fraction * len(pairs))
    if num_ties:
        preference[np.argsort(np.abs(delta), kind="stable")[:num_ties]] = 0
    return delta, preference


def oracle_utility(
    media: Sequence[np.ndarray],
    prompts: Sequence[str],
    kind: str,
    weights: Mapping[str, float],
    interaction: float,
) -> np.ndarray:
    """[N] noiseless "human" utility of any media (rendered or generated), judged by the pixel
    oracle against each prompt: the stand-in for human raters when evaluating a generator."""
    levels = [measure(np.asarray(m), p) for m, p in zip(media, prompts, strict=True)]
    return utility(levels, kind, weights, interaction)


Judge = Callable[[Sequence[np.ndarray], Sequence[str]], np.ndarray]


def synthworld_judge(dataset: Any) -> Judge | None:
    """The oracle utility of the dataset's world, as a judge of media and prompts (the stand-in
    for human raters), or None when ``dataset`` is not a SynthWorld split (a user's media)."""
    if getattr(dataset, "kind", None) != "synthworld":
        return None
    utility = dataset.utility
    kind = str(dataset.media)
    weights = dict(utility.weights)
    return lambda media, prompts: oracle_utility(media, prompts, kind, weights, utility.interaction)
