"""The benchmarks' own accuracy protocols, each under one fixed name (docs/benchmarks.md).

Published numbers for one reward on one benchmark disagree mostly because benchmarks score ties
differently. This module owns each benchmark's rule as a function of scores and human labels,
the registry of their names (:data:`PROTOCOLS`, keyed by :class:`Protocol`, whose home is
:mod:`vrexp.configs.choices` so configs can name it), the Pick-a-Pic threshold
selection, and the bootstrap interval of every protocol. It reads no files: the dataset loaders
turn each benchmark's label encoding into the two forms below.

* **Pairs** (``tau_star``, ``tau_star_videoalign``, ``diff``, ``without_ties``, ``pickapic``):
  ``score_a``, ``score_b`` and ``label`` of ``N`` pairs, where ``label`` is ``+1`` (A preferred),
  ``-1`` (B preferred) or ``0`` (human tie), as in :mod:`vrexp.metrics.preference`.
* **Ranked lists** (``hpdv2``, ``imagereward``): ``score``, ``rank`` and ``group`` of every
  image, where ``rank`` is the human rank (lower is better, equal ranks are a human tie, as in
  HPDv2's ``rank`` and ImageReward's ``ranking``) and ``group`` identifies the ranked list an
  image belongs to (one id per list, e.g. its index in ``test.json``; not the prompt text, which
  two lists may share). Within a list, images keep their order in the arrays.

Arithmetic is float64 (scores are converted before subtracting, so close float32 scores do not
become spurious ties); counts are int64. Every protocol returns a :class:`ProtocolResult`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from vrexp.configs.choices import Choice, ModelTies, Protocol
from vrexp.metrics.preference import (
    _diff_accuracy_unchecked,
    _tau_star_unchecked,
    _validate,
    model_ties_option,
    resample_interval,
)

__all__ = [
    "DIFF_MODEL_TIES",
    "PICKAPIC_THRESHOLDS",
    "PROTOCOLS",
    "PickapicThreshold",
    "Protocol",
    "ProtocolResult",
    "ProtocolSpec",
    "protocol_interval",
    "score_diff",
    "score_hpdv2",
    "score_imagereward",
    "score_pickapic",
    "score_protocol",
    "score_tau_star",
    "score_tau_star_videoalign",
    "score_without_ties",
    "select_pickapic_threshold",
]


# The protocol ``diff``'s default: the paper's diff** = C / (C + D).
DIFF_MODEL_TIES = ModelTies.drop
# The official Pick-a-Pic grid, 0, 0.1, ..., 1 (k / 10 is the same double as the literal).
PICKAPIC_THRESHOLDS: tuple[float, ...] = tuple(k / 10 for k in range(11))


@dataclass(frozen=True)
class ProtocolResult:
    """One protocol's value on one set of pairs or ranked lists, and what it counted.

    ``pairs`` is every pair (for ranked lists, every two images of one list); ``human_ties`` the
    pairs humans tied; ``model_ties`` the pairs the reward ties exactly (equal scores);
    ``skipped`` the pairs left out of the value's denominator; ``prompts`` the ranked lists
    (``None`` for pair protocols). ``params`` holds the protocol's options and fitted values
    (``model_ties``, ``epsilon``, ``threshold``, ``predicted_ties``).
    """

    protocol: Protocol
    value: float
    pairs: int
    human_ties: int
    model_ties: int
    skipped: int
    prompts: int | None = None
    params: Mapping[str, float | int | str] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        """``pairs``, ``human_ties``, ``model_ties``, ``skipped`` (and ``prompts`` if ranked)."""
        out = {
            "pairs": self.pairs,
            "human_ties": self.human_ties,
            "model_ties": self.model_ties,
            "skipped": self.skipped,
        }
        if self.prompts is not None:
            out["prompts"] = self.prompts
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record: protocol, value, counts and params."""
        return {
            "protocol": str(self.protocol),
            "value": self.value,
            "counts": self.counts,
            "params": {k: (str(v) if isinstance(v, Choice) else v) for k, v in self.params.items()},
        }


@dataclass(frozen=True)
class _Scored:
    """A protocol's result plus its value as a function of resampled units (for the bootstrap)."""

    result: ProtocolResult
    num_units: int
    statistic: Callable[[Tensor], Tensor]


# ----------------------------------------------------------------------------- inputs


def _scores(name: str, values: Any) -> Tensor:
    """A 1-D float64 CPU tensor of finite scores, or a ValueError naming ``name``."""
    try:
        t = torch.as_tensor(np.asarray(values, dtype=np.float64))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be numbers: {err}") from None
    if t.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(t.shape)}")
    bad = ~torch.isfinite(t)
    if bad.any():
        idx = torch.nonzero(bad).flatten()[:5].tolist()
        raise ValueError(f"{name} is not finite at index {idx}: {t[bad][:5].tolist()}")
    return t


def _pair_inputs(score_a: Any, score_b: Any, label: Any) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(score_a, score_b, delta, label)`` checked: float64 scores, int64 labels in {-1, 0, 1}."""
    a, b = _scores("score_a", score_a), _scores("score_b", score_b)
    if a.shape != b.shape:
        raise ValueError(
            f"score_a and score_b must share a shape, got {tuple(a.shape)}, {tuple(b.shape)}"
        )
    label_t = torch.as_tensor(np.asarray(label))
    delta, label_t = _validate(a - b, label_t)
    return a, b, delta, label_t


def _ranked_inputs(score: Any, rank: Any, group: Any) -> tuple[Tensor, Tensor, np.ndarray, Any]:
    """``(score, rank, group codes, group keys)``, checked."""
    s, r = _scores("score", score), _scores("rank", rank)
    g = np.asarray(group)
    if g.ndim != 1:
        raise ValueError(f"group must be 1-D, got shape {g.shape}")
    if not (s.shape[0] == r.shape[0] == g.shape[0]):
        raise ValueError(
            f"score, rank and group must have one entry per image, got lengths "
            f"{s.shape[0]}, {r.shape[0]}, {g.shape[0]}"
        )
    try:
        keys, codes = np.unique(g, return_inverse=True)
    except TypeError as err:
        raise ValueError(f"group ids must be mutually comparable: {err}") from None
    return s, r, codes.reshape(-1), keys


def _cat_indices(parts: list[np.ndarray]) -> Tensor:
    return torch.as_tensor(
        np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
    )


def _list_pairs(codes: np.ndarray) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Every ``i < j`` pair of images within one list: ``(i, j, pair list, list sizes)``.

    ``i`` comes before ``j`` in the input order, which decides HPDv2's model-tie break.
    """
    num_lists = int(codes.max()) + 1 if codes.size else 0
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes, minlength=num_lists)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]) if num_lists else np.zeros(0, np.int64)
    first, second, owner = [], [], []
    for g, (start, size) in enumerate(zip(starts.tolist(), sizes.tolist(), strict=True)):
        members = order[start : start + size]
        upper_a, upper_b = np.triu_indices(size, 1)
        first.append(members[upper_a])
        second.append(members[upper_b])
        owner.append(np.full(upper_a.shape[0], g, dtype=np.int64))
    return (
        _cat_indices(first),
        _cat_indices(second),
        _cat_indices(owner),
        torch.as_tensor(sizes.astype(np.int64)),
    )


def _check_options(protocol: Protocol, options: Mapping[str, Any], allowed: Sequence[str]) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"protocol {str(protocol)!r} takes options {list(allowed)}, got unknown {unknown}"
        )


# ----------------------------------------------------------------------------- pair protocols


def _score_tau_star(score_a: Any, score_b: Any, label: Any) -> _Scored:
    _, _, delta, label_t = _pair_inputs(score_a, score_b, label)
    accuracy, epsilon = _tau_star_unchecked(delta, label_t)
    result = ProtocolResult(
        Protocol.tau_star,
        float(accuracy),
        pairs=delta.numel(),
        human_ties=int((label_t == 0).sum()),
        model_ties=int((delta == 0).sum()),
        skipped=0,
        params={
            "epsilon": float(epsilon),
            "predicted_ties": int((delta.abs() <= epsilon).sum()),
        },
    )
    return _Scored(
        result, delta.numel(), lambda idx: _tau_star_unchecked(delta[idx], label_t[idx])[0]
    )


def score_tau_star(score_a: Any, score_b: Any, label: Any) -> ProtocolResult:
    """``tau_star``: exact tie-calibrated accuracy with ties (Deutsch et al. 2023, "Ties Matter").

    The reward calls a pair tied iff ``|delta| <= epsilon``; the accuracy is ``(C + T_hm) / N``
    over all ``N`` pairs (concordant pairs plus pairs both tie), maximised over the candidate
    thresholds "nothing tied" (epsilon = -1) and every distinct ``|delta|``, so all pairs of equal
    ``|delta|`` fall on one side of epsilon; of equal accuracies the smallest epsilon is kept.
    This is :func:`vrexp.metrics.preference.tau_star`. ``params``: ``epsilon``,
    ``predicted_ties`` (pairs with ``|delta| <= epsilon``).
    """
    return _score_tau_star(score_a, score_b, label).result


def _videoalign_unchecked(delta: Tensor, label: Tensor) -> tuple[Tensor, Tensor]:
    """The one-pair-at-a-time sweep on validated float64 / int64 inputs: ``(accuracy, epsilon)``."""
    n = delta.numel()
    if n == 0:
        nan = torch.tensor(float("nan"), dtype=torch.float64)
        return nan, nan.clone()
    # Stable, as Python's ``sorted`` is: pairs of equal |delta| keep their input order.
    magnitude, order = torch.sort(delta.abs(), stable=True)
    h = label[order]
    concordant = (torch.sign(delta[order]).to(torch.int64) == h) & (h != 0)
    gain = (h == 0).to(torch.int64) - concordant.to(torch.int64)
    # correct[k] = pairs right once the first k + 1 sorted pairs are tied; "nothing tied" is
    # never a candidate, and a run of equal |delta| may be split.
    correct = concordant.sum() + torch.cumsum(gain, 0)
    best = int(torch.argmax(correct))  # the first maximum, as the sweep's strict ``>`` keeps
    return correct[best].to(torch.float64) / n, magnitude[best]


def _score_tau_star_videoalign(score_a: Any, score_b: Any, label: Any) -> _Scored:
    _, _, delta, label_t = _pair_inputs(score_a, score_b, label)
    accuracy, epsilon = _videoalign_unchecked(delta, label_t)
    result = ProtocolResult(
        Protocol.tau_star_videoalign,
        float(accuracy),
        pairs=delta.numel(),
        human_ties=int((label_t == 0).sum()),
        model_ties=int((delta == 0).sum()),
        skipped=0,
        params={"epsilon": float(epsilon)},
    )
    return _Scored(
        result, delta.numel(), lambda idx: _videoalign_unchecked(delta[idx], label_t[idx])[0]
    )


def score_tau_star_videoalign(score_a: Any, score_b: Any, label: Any) -> ProtocolResult:
    """``tau_star_videoalign``: accuracy with ties as VideoAlign's ``calc_accuracy_with_ties``
    (KwaiVGI/VideoAlign, ``calc_accuracy.py``) computes it, for VideoGen-RewardBench's "w/ Ties".

    The pairs are sorted by ``|delta|`` with a stable sort (pairs of equal ``|delta|`` keep their
    input order). For ``k = 1 .. N`` the first ``k`` sorted pairs count as tied by the reward and
    the rest as untied, and ``(C + T_hm) / N`` is evaluated (C: untied pairs with a decided label
    and ``label * delta > 0``; T_hm: tied pairs that humans tied). The result is the largest of
    these ``N`` values (the first, i.e. smallest ``k``, on equal values). Unlike ``tau_star``, it
    never evaluates "nothing tied", and it can tie part of a run of equal ``|delta|``, which no
    real threshold can: on quantised scores it can exceed ``tau_star`` and depends on the pair
    order. ``params``: ``epsilon``, the ``|delta|`` of the ``k``-th sorted pair. Empty input
    gives NaN.
    """
    return _score_tau_star_videoalign(score_a, score_b, label).result


def _score_diff(
    score_a: Any,
    score_b: Any,
    label: Any,
    *,
    model_ties: ModelTies | str = DIFF_MODEL_TIES,
    protocol: Protocol = Protocol.diff,
) -> _Scored:
    option = model_ties_option(model_ties)
    _, _, delta, label_t = _pair_inputs(score_a, score_b, label)
    human_ties = int((label_t == 0).sum())
    dropped_model_ties = int(((delta == 0) & (label_t != 0)).sum())
    result = ProtocolResult(
        protocol,
        float(_diff_accuracy_unchecked(delta, label_t, option)),
        pairs=delta.numel(),
        human_ties=human_ties,
        model_ties=int((delta == 0).sum()),
        skipped=human_ties + (dropped_model_ties if option == ModelTies.drop else 0),
        params={"model_ties": option},
    )
    return _Scored(
        result,
        delta.numel(),
        lambda idx: _diff_accuracy_unchecked(delta[idx], label_t[idx], option),
    )


def score_diff(
    score_a: Any, score_b: Any, label: Any, *, model_ties: ModelTies | str = DIFF_MODEL_TIES
) -> ProtocolResult:
    """``diff``: accuracy over the pairs humans decided; human ties are left out.

    With C concordant and D discordant decided pairs and T_m decided pairs the reward ties
    exactly (equal scores), ``model_ties`` picks the convention, named in ``params``:
    ``drop`` (default, the paper's ``C / (C + D)``), ``half`` (``(C + T_m / 2) / (C + D + T_m)``)
    or ``wrong`` (``C / (C + D + T_m)``). NaN when no pair is left to count.
    """
    return _score_diff(score_a, score_b, label, model_ties=model_ties).result


def _score_without_ties(score_a: Any, score_b: Any, label: Any) -> _Scored:
    return _score_diff(
        score_a, score_b, label, model_ties=ModelTies.wrong, protocol=Protocol.without_ties
    )


def score_without_ties(score_a: Any, score_b: Any, label: Any) -> ProtocolResult:
    """``without_ties``: VideoGen-RewardBench's "w/o Ties" (VideoAlign's
    ``calc_accuracy_without_ties``): human ties dropped, a reward tie counted wrong,
    ``C / (C + D + T_m)``; the same number as ``diff`` with ``model_ties="wrong"``."""
    return _score_without_ties(score_a, score_b, label).result


def _pickapic_gap(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """``(|p1 - p0|, p0 > p1)`` with ``(p0, p1)`` the softmax of the two scores of each pair."""
    # The two-way softmax written out (exp of each minus the larger, over their sum): the same
    # arithmetic as torch.softmax, without a reduction that costs ~10 ms on a busy CPU.
    top = torch.maximum(a, b)
    e0, e1 = torch.exp(a - top), torch.exp(b - top)
    p0, p1 = e0 / (e0 + e1), e1 / (e0 + e1)
    return (p1 - p0).abs(), p0 > p1


def _pickapic_half_points(gap: Tensor, first: Tensor, label: Tensor, threshold: float) -> Tensor:
    """Credit per pair in half points: 2 exact match, 1 when exactly one side is a tie, else 0."""
    pred = torch.where(
        gap <= threshold,
        torch.zeros_like(label),
        torch.where(first, torch.ones_like(label), -torch.ones_like(label)),
    )
    one_tie = (pred == 0) ^ (label == 0)
    return torch.where(pred == label, 2, torch.where(one_tie, 1, 0)).to(torch.int64)


def _check_threshold(threshold: Any) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise ValueError(f"pickapic threshold must be a number in [0, 1], got {threshold!r}")
    if not (0.0 <= float(threshold) <= 1.0):
        raise ValueError(f"pickapic threshold must be in [0, 1], got {threshold}")
    return float(threshold)


def _score_pickapic(score_a: Any, score_b: Any, label: Any, *, threshold: float) -> _Scored:
    t = _check_threshold(threshold)
    a, b, delta, label_t = _pair_inputs(score_a, score_b, label)
    gap, first = _pickapic_gap(a, b)
    points = _pickapic_half_points(gap, first, label_t, t)
    n = delta.numel()
    result = ProtocolResult(
        Protocol.pickapic,
        float(points.sum()) / (2 * n) if n else math.nan,
        pairs=n,
        human_ties=int((label_t == 0).sum()),
        model_ties=int((delta == 0).sum()),
        skipped=0,
        params={"threshold": t, "predicted_ties": int((gap <= t).sum())},
    )
    return _Scored(result, n, lambda idx: points[idx].sum().to(torch.float64) / (2 * idx.numel()))


def score_pickapic(score_a: Any, score_b: Any, label: Any, *, threshold: float) -> ProtocolResult:
    """``pickapic``: Pick-a-Pic's 3-way accuracy with half credit (yuvalkirstain/PickScore,
    ``trainer/scripts/eval_preference_predictor.py``).

    ``(p0, p1)`` is the softmax of the pair's two scores (PickScore's logits). The reward
    predicts a tie iff ``|p1 - p0| <= threshold``, else the side with the larger ``p``. A pair
    scores 1 when prediction and label agree (both ties included), 0.5 when exactly one of them
    is a tie, 0 otherwise; the value is the mean over all pairs. ``label``: ``label_0 = 1`` is
    ``+1``, ``0`` is ``-1``, ``0.5`` (tie) is ``0``. Choose ``threshold`` on the validation split
    with :func:`select_pickapic_threshold`. ``params``: ``threshold``, ``predicted_ties``.
    """
    return _score_pickapic(score_a, score_b, label, threshold=threshold).result


@dataclass(frozen=True)
class PickapicThreshold:
    """The chosen tie threshold and the accuracy of every candidate, in candidate order."""

    threshold: float
    accuracy: float
    accuracies: tuple[tuple[float, float], ...]


def select_pickapic_threshold(
    score_a: Any, score_b: Any, label: Any, thresholds: Sequence[float] = PICKAPIC_THRESHOLDS
) -> PickapicThreshold:
    """The ``pickapic`` tie threshold with the best accuracy on these (validation) pairs.

    The official evaluation tries 0, 0.1, ..., 1 on ``validation_unique`` and applies the best to
    ``test_unique``; of equally accurate thresholds it keeps the smallest. Accuracies are compared
    as exact half-point totals, so equal accuracies compare equal.
    """
    if len(thresholds) == 0:
        raise ValueError("thresholds must not be empty")
    checked = [_check_threshold(t) for t in thresholds]
    a, b, _, label_t = _pair_inputs(score_a, score_b, label)
    if label_t.numel() == 0:
        raise ValueError("cannot choose a pickapic threshold on an empty set of pairs")
    gap, first = _pickapic_gap(a, b)
    totals = [int(_pickapic_half_points(gap, first, label_t, t).sum()) for t in checked]
    best = max(totals)
    chosen = min(t for t, total in zip(checked, totals, strict=True) if total == best)
    n2 = 2 * label_t.numel()
    return PickapicThreshold(
        threshold=chosen,
        accuracy=best / n2,
        accuracies=tuple((t, total / n2) for t, total in zip(checked, totals, strict=True)),
    )


# ----------------------------------------------------------------------------- ranked lists


def _score_hpdv2(score: Any, rank: Any, group: Any) -> _Scored:
    s, r, codes, keys = _ranked_inputs(score, rank, group)
    first, second, owner, sizes = _list_pairs(codes)
    short = torch.nonzero(sizes < 2).flatten()
    if short.numel():
        g = int(short[0])
        raise ValueError(
            f"hpdv2: ranked list {keys.tolist()[g]!r} has {int(sizes[g])} image(s); every list needs at "
            f"least 2 ({short.numel()} such list(s))"
        )
    delta = s[first] - s[second]
    human = torch.sign(r[second] - r[first]).to(torch.int64)  # +1: the earlier image ranks better
    # The model's ranking is a strict order; on equal scores the earlier image ranks first.
    model = torch.where(delta < 0, -1, 1).to(torch.int64)
    discordant = ((human != 0) & (model != human)).to(torch.float64)
    num_lists = sizes.numel()
    per_list_pairs = (sizes * (sizes - 1) // 2).to(torch.float64)
    per_list = (
        1.0
        - torch.zeros(num_lists, dtype=torch.float64).index_add_(0, owner, discordant)
        / per_list_pairs
    )
    result = ProtocolResult(
        Protocol.hpdv2,
        float(per_list.mean()) if num_lists else math.nan,
        pairs=delta.numel(),
        human_ties=int((human == 0).sum()),
        model_ties=int((delta == 0).sum()),
        skipped=0,
        prompts=num_lists,
    )
    return _Scored(result, num_lists, lambda idx: per_list[idx].mean())


def score_hpdv2(score: Any, rank: Any, group: Any) -> ProtocolResult:
    """``hpdv2``: HPDv2's ranking accuracy (tgxs002/HPSv2, ``hpsv2/evaluation.py`` with
    ``inversion_score`` of ``hpsv2/src/training/train.py``).

    Per ranked list of ``n`` images, the reward's ranking (a strict order by descending score)
    is compared with the human ``rank`` over all ``n (n - 1) / 2`` pairs: a pair is discordant
    when humans rank one image better and the reward orders them the other way. A human-tied pair
    is never discordant (it counts as agreement). The list scores ``1 - discordant / pairs``;
    the value is the mean over lists. A reward tie is broken by list order (the earlier image
    ranks first), a deterministic stand-in for the official ``argsort``, whose order of equal
    scores is unspecified. Every list needs at least 2 images. Intervals resample lists.
    """
    return _score_hpdv2(score, rank, group).result


def _score_imagereward(score: Any, rank: Any, group: Any) -> _Scored:
    s, r, codes, _ = _ranked_inputs(score, rank, group)
    first, second, _, sizes = _list_pairs(codes)
    delta = s[first] - s[second]
    label = torch.sign(r[second] - r[first]).to(torch.int64)
    human_ties = int((label == 0).sum())
    result = ProtocolResult(
        Protocol.imagereward,
        float(_diff_accuracy_unchecked(delta, label, ModelTies.wrong)),
        pairs=delta.numel(),
        human_ties=human_ties,
        model_ties=int((delta == 0).sum()),
        skipped=human_ties,
        prompts=sizes.numel(),
    )
    return _Scored(
        result,
        delta.numel(),
        lambda idx: _diff_accuracy_unchecked(delta[idx], label[idx], ModelTies.wrong),
    )


def score_imagereward(score: Any, rank: Any, group: Any) -> ProtocolResult:
    """``imagereward``: ImageRewardDB's test accuracy (THUDM/ImageReward, ``test.py``).

    Over every two images of each ranked list: a human-tied pair (equal ``rank``) is skipped;
    otherwise the pair is right iff the reward scores the better-ranked image strictly higher
    (a reward tie is wrong). The value is pooled over all counted pairs of all lists (not a mean
    over lists). Intervals resample pairs.
    """
    return _score_imagereward(score, rank, group).result


# ----------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class ProtocolSpec:
    """How to call a protocol: its data form, options, bootstrap unit and one-line rule."""

    name: Protocol
    data: Literal["pairs", "ranked"]
    options: tuple[str, ...]
    resample: Literal["pairs", "prompts"]
    summary: str
    score: Callable[..., ProtocolResult]
    scored: Callable[..., _Scored]  # the result plus its resampling statistic


PROTOCOLS: dict[Protocol, ProtocolSpec] = {
    spec.name: spec
    for spec in (
        ProtocolSpec(
            Protocol.tau_star,
            "pairs",
            (),
            "pairs",
            "exact tie calibration: equal |delta| on one side of epsilon, 'no tie' a candidate",
            score_tau_star,
            _score_tau_star,
        ),
        ProtocolSpec(
            Protocol.tau_star_videoalign,
            "pairs",
            (),
            "pairs",
            "VideoAlign's one-pair-at-a-time sweep over sorted |delta|",
            score_tau_star_videoalign,
            _score_tau_star_videoalign,
        ),
        ProtocolSpec(
            Protocol.diff,
            "pairs",
            ("model_ties",),
            "pairs",
            "human ties dropped; model ties dropped (default), half or wrong",
            score_diff,
            _score_diff,
        ),
        ProtocolSpec(
            Protocol.without_ties,
            "pairs",
            (),
            "pairs",
            "human ties dropped, model ties wrong (VideoGen-RewardBench w/o Ties)",
            score_without_ties,
            _score_without_ties,
        ),
        ProtocolSpec(
            Protocol.hpdv2,
            "ranked",
            (),
            "prompts",
            "1 - inversion rate per list, human ties agree, mean over lists",
            score_hpdv2,
            _score_hpdv2,
        ),
        ProtocolSpec(
            Protocol.imagereward,
            "ranked",
            (),
            "pairs",
            "pairs within a list, human ties skipped, model ties wrong, pooled",
            score_imagereward,
            _score_imagereward,
        ),
        ProtocolSpec(
            Protocol.pickapic,
            "pairs",
            ("threshold",),
            "pairs",
            "3-way with half credit, tie iff |p1 - p0| <= threshold (softmax of the scores)",
            score_pickapic,
            _score_pickapic,
        ),
    )
}


def _spec(name: Protocol | str) -> ProtocolSpec:
    try:
        return PROTOCOLS[Protocol(name)]
    except ValueError:
        raise ValueError(f"unknown protocol {name!r}; valid: {Protocol.values()}") from None


def _scored(name: Protocol | str, data: Sequence[Any], options: Mapping[str, Any]) -> _Scored:
    spec = _spec(name)
    _check_options(spec.name, options, spec.options)
    if len(data) != 3:
        form = "score_a, score_b, label" if spec.data == "pairs" else "score, rank, group"
        raise ValueError(f"protocol {str(spec.name)!r} takes ({form}), got {len(data)} arrays")
    return spec.scored(*data, **options)


def score_protocol(name: Protocol | str, *data: Any, **options: Any) -> ProtocolResult:
    """Score ``data`` (``score_a, score_b, label`` or ``score, rank, group``) under protocol
    ``name`` with its ``options`` (``model_ties`` for ``diff``, ``threshold`` for ``pickapic``)."""
    return _scored(name, data, options).result


def protocol_interval(
    name: Protocol | str,
    *data: Any,
    num_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    **options: Any,
) -> tuple[float, float]:
    """Percentile-bootstrap interval of protocol ``name`` on ``data``: pairs are resampled, or
    whole ranked lists for ``hpdv2`` (its value is a mean over lists). Thresholds that a protocol
    fits (tau*'s epsilon, VideoAlign's sweep) are refitted on every resample; ``pickapic``'s
    threshold stays the one passed. Deterministic for a ``seed``
    (:func:`vrexp.metrics.preference.resample_interval`)."""
    scored = _scored(name, data, options)
    return resample_interval(
        scored.statistic,
        scored.num_units,
        num_resamples=num_resamples,
        confidence=confidence,
        seed=seed,
    )
