"""SynthWorld's hidden human preference: a utility over factor qualities, and labelled pairs.

The utility is a positive weighting of per-factor qualities plus an interaction term (a bonus when
the media is both well aligned and sharp), so a linear reward on checklist answers fits it well but
not perfectly. Each pair judgement adds Gaussian noise; the smallest ``tie_fraction`` of absolute
differences are labelled ties, so the tie rate is exactly the configured one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

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


def factor_qualities(levels: Sequence[Mapping[str, int]], media: str) -> np.ndarray:
    """[N, F] per-factor quality in [0, 1] of items given their factor levels, the factors in
    ``FACTORS[media]`` order."""
    keys = [f.key for f in FACTORS[media]]
    q = [[quality(lv, media)[k] for k in keys] for lv in levels]
    return np.array(q, dtype=np.float64).reshape(len(levels), len(keys))  # [0, F] when empty


def utility_of_qualities(
    qualities: np.ndarray, media: str, weights: Mapping[str, float], interaction: float
) -> np.ndarray:
    """[N] noiseless utility of items given their [N, F] :func:`factor_qualities`."""
    check_weights(weights, media)
    keys = [f.key for f in FACTORS[media]]
    q = np.asarray(qualities, dtype=np.float64)
    w = np.array([weights[k] for k in keys])
    a, c = (keys.index(k) for k in INTERACTION_FACTORS)
    return q @ w + interaction * q[:, a] * q[:, c]


def utility(
    levels: Sequence[Mapping[str, int]],
    media: str,
    weights: Mapping[str, float],
    interaction: float,
) -> np.ndarray:
    """[N] noiseless utility of items given their factor levels."""
    return utility_of_qualities(factor_qualities(levels, media), media, weights, interaction)


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


class Verdict(NamedTuple):
    """The oracle's judgement of N media: the utility, and the quality of each factor behind it
    (what "on which dimensions" means in a world whose truth is known)."""

    utility: np.ndarray  # [N]
    qualities: dict[str, np.ndarray]  # factor key -> [N] quality in [0, 1], FACTORS order


def oracle_verdict(
    media: Sequence[np.ndarray],
    prompts: Sequence[str],
    kind: str,
    weights: Mapping[str, float],
    interaction: float,
) -> Verdict:
    """The pixel oracle's :class:`Verdict` on any media (rendered or generated) against each
    prompt: the stand-in for human raters when evaluating a generator."""
    levels = [measure(np.asarray(m), p) for m, p in zip(media, prompts, strict=True)]
    q = factor_qualities(levels, kind)
    keys = [f.key for f in FACTORS[kind]]
    return Verdict(
        utility_of_qualities(q, kind, weights, interaction),
        {k: q[:, i] for i, k in enumerate(keys)},
    )


Judge = Callable[[Sequence[np.ndarray], Sequence[str]], np.ndarray]
FactorJudge = Callable[[Sequence[np.ndarray], Sequence[str]], Verdict]


def synthworld_verdict(dataset: Any) -> FactorJudge | None:
    """The oracle of the dataset's world as a judge that also gives each factor's quality, or
    None when ``dataset`` is not a SynthWorld split (a user's media)."""
    if getattr(dataset, "kind", None) != "synthworld":
        return None
    utility = dataset.utility
    kind = str(dataset.media)
    weights = dict(utility.weights)
    return lambda media, prompts: oracle_verdict(media, prompts, kind, weights, utility.interaction)


def synthworld_judge(dataset: Any) -> Judge | None:
    """The oracle utility of the dataset's world, as a judge of media and prompts (the stand-in
    for human raters), or None when ``dataset`` is not a SynthWorld split (a user's media)."""
    verdict = synthworld_verdict(dataset)
    if verdict is None:
        return None
    return lambda media, prompts: verdict(media, prompts).utility
