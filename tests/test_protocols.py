"""Benchmark tie protocols: hand-made cases with ties at the boundaries, plain-Python brute-force
versions of each benchmark's rule on random quantised scores, the Pick-a-Pic threshold choice,
the bootstrap units, and the ``model_ties`` option of ``diff_accuracy`` / ``DiffAccuracy``."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vrexp.metrics import DiffAccuracy, ModelTies, diff_accuracy
from vrexp.metrics.protocols import (
    PICKAPIC_THRESHOLDS,
    PROTOCOLS,
    Protocol,
    protocol_interval,
    score_diff,
    score_hpdv2,
    score_imagereward,
    score_pickapic,
    score_protocol,
    score_tau_star,
    score_tau_star_videoalign,
    score_without_ties,
    select_pickapic_threshold,
)

# ----------------------------------------------------------------------------- brute force
# Each is the benchmark's rule written as plain loops over pairs, independent of the module.


def brute_tau_star(delta: list[float], label: list[int]) -> tuple[float, float]:
    """Every real threshold: "nothing tied" (-1) and each distinct |delta|; smallest best."""
    best, best_eps = -1, math.nan
    for eps in [-1.0, *sorted({abs(d) for d in delta})]:
        right = 0
        for d, h in zip(delta, label, strict=True):
            tied = abs(d) <= eps
            right += (h == 0 and tied) or (h != 0 and not tied and h * d > 0)
        if right > best:
            best, best_eps = right, eps
    return best / len(delta), best_eps


def brute_videoalign(delta: list[float], label: list[int]) -> tuple[float, float]:
    """Tie the first k pairs of the stable |delta| order, for k = 1..N; first best k."""
    order = sorted(range(len(delta)), key=lambda i: abs(delta[i]))
    best, best_eps = -1, math.nan
    for k in range(1, len(delta) + 1):
        tied = set(order[:k])
        right = 0
        for i, (d, h) in enumerate(zip(delta, label, strict=True)):
            right += (h == 0 and i in tied) or (h != 0 and i not in tied and h * d > 0)
        if right > best:
            best, best_eps = right, abs(delta[order[k - 1]])
    return best / len(delta), best_eps


def brute_diff(delta: list[float], label: list[int], model_ties: str) -> float:
    right = total = 0.0
    for d, h in zip(delta, label, strict=True):
        if h == 0:
            continue
        if d == 0:
            if model_ties == "drop":
                continue
            right += 0.5 if model_ties == "half" else 0.0
        else:
            right += h * d > 0
        total += 1
    return right / total if total else math.nan


def brute_lists(score: list[float], rank: list[float], group: list[int]) -> list[list[int]]:
    """The image indices of each list, in input order."""
    return [[i for i, g in enumerate(group) if g == key] for key in sorted(set(group))]


def brute_hpdv2(score: list[float], rank: list[float], group: list[int]) -> float:
    per_list = []
    for members in brute_lists(score, rank, group):
        n = len(members)
        # The reward's rank of each image: its position when sorted by descending score; the
        # sort is stable, so of equal scores the earlier image ranks first.
        by_score = sorted(range(n), key=lambda k: -score[members[k]])
        model_rank = [by_score.index(k) for k in range(n)]
        human_rank = [rank[i] for i in members]
        bad = 0
        for x in range(n):
            for y in range(x + 1, n):
                if human_rank[x] < human_rank[y] and model_rank[x] > model_rank[y]:
                    bad += 1
                if human_rank[x] > human_rank[y] and model_rank[x] < model_rank[y]:
                    bad += 1
        per_list.append(1 - bad / (n * (n - 1) / 2))
    return sum(per_list) / len(per_list)


def brute_imagereward(score: list[float], rank: list[float], group: list[int]) -> float:
    right = total = 0
    for members in brute_lists(score, rank, group):
        for x, i in enumerate(members):
            for j in members[x + 1 :]:
                if rank[i] == rank[j]:
                    continue
                total += 1
                better, worse = (i, j) if rank[i] < rank[j] else (j, i)
                right += score[better] > score[worse]
    return right / total if total else math.nan


def brute_pickapic(a: list[float], b: list[float], label: list[int], threshold: float) -> float:
    credit = 0.0
    for x, y, h in zip(a, b, label, strict=True):
        top = max(x, y)
        e0, e1 = math.exp(x - top), math.exp(y - top)
        p0, p1 = e0 / (e0 + e1), e1 / (e0 + e1)
        pred = 0 if abs(p1 - p0) <= threshold else (1 if p0 > p1 else -1)
        credit += 1.0 if pred == h else (0.5 if 0 in (pred, h) else 0.0)
    return credit / len(label)


# Quantised scores (few distinct values) so that reward ties, human ties and runs of equal
# |delta| all occur often.
quantised = st.integers(-3, 3).map(lambda k: k / 2)
pair_lists = st.integers(1, 40).flatmap(
    lambda n: st.tuples(
        st.lists(quantised, min_size=n, max_size=n),
        st.lists(quantised, min_size=n, max_size=n),
        st.lists(st.integers(-1, 1), min_size=n, max_size=n),
    )
)
ranked_lists = st.lists(
    st.integers(2, 6).flatmap(
        lambda n: st.tuples(
            st.lists(quantised, min_size=n, max_size=n),
            st.lists(st.integers(1, 3), min_size=n, max_size=n),
        )
    ),
    min_size=1,
    max_size=6,
)


def flatten(lists: list[tuple[list[float], list[int]]]) -> tuple[list, list, list]:
    score, rank, group = [], [], []
    for g, (s, r) in enumerate(lists):
        score += s
        rank += r
        group += [g] * len(s)
    return score, rank, group


def same(x: float, y: float) -> bool:
    return (math.isnan(x) and math.isnan(y)) or x == pytest.approx(y, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(pair_lists)
def test_pair_protocols_match_brute_force(data: tuple[list, list, list]) -> None:
    a, b, label = data
    delta = [x - y for x, y in zip(a, b, strict=True)]
    tau = score_tau_star(a, b, label)
    assert (tau.value, tau.params["epsilon"]) == pytest.approx(brute_tau_star(delta, label))
    va = score_tau_star_videoalign(a, b, label)
    assert (va.value, va.params["epsilon"]) == pytest.approx(brute_videoalign(delta, label))
    # A real threshold cannot do better than a sweep that may also split equal |delta|, except
    # through "nothing tied", which the sweep never tries.
    assert va.value >= tau.value or tau.params["epsilon"] == -1.0
    for option in ModelTies.values():
        assert same(
            score_diff(a, b, label, model_ties=option).value, brute_diff(delta, label, option)
        )
    assert same(score_without_ties(a, b, label).value, brute_diff(delta, label, "wrong"))
    for threshold in PICKAPIC_THRESHOLDS:
        got = score_pickapic(a, b, label, threshold=threshold).value
        assert got == pytest.approx(brute_pickapic(a, b, label, threshold), abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(ranked_lists)
def test_ranked_protocols_match_brute_force(lists: list) -> None:
    score, rank, group = flatten(lists)
    assert score_hpdv2(score, rank, group).value == pytest.approx(brute_hpdv2(score, rank, group))
    assert same(score_imagereward(score, rank, group).value, brute_imagereward(score, rank, group))


@settings(max_examples=40, deadline=None)
@given(pair_lists)
def test_pickapic_threshold_is_the_smallest_best(data: tuple[list, list, list]) -> None:
    a, b, label = data
    chosen = select_pickapic_threshold(a, b, label)
    brute = [brute_pickapic(a, b, label, t) for t in PICKAPIC_THRESHOLDS]
    best = max(brute)
    smallest = min(
        t for t, acc in zip(PICKAPIC_THRESHOLDS, brute, strict=True) if acc == pytest.approx(best)
    )
    assert chosen.threshold == smallest
    assert chosen.accuracy == pytest.approx(best)
    assert [acc for _, acc in chosen.accuracies] == pytest.approx(brute)


# ----------------------------------------------------------------------------- hand cases


def test_tau_star_groups_equal_magnitudes_and_videoalign_splits_them() -> None:
    # delta 0.5, 0.5, 0.5, 1.0 with labels tie, tie, A, A.
    a, b, label = [0.5, 0.5, 0.5, 1.0], [0.0] * 4, [0, 0, 1, 1]
    # tau_star: nothing tied -> C = 2 -> 2/4; eps = 0.5 ties the three 0.5 pairs: T_hm = 2 plus
    # C = 1 (the 1.0 pair) -> 3/4; eps = 1 ties all: T_hm = 2 -> 2/4. Best 3/4 at 0.5.
    tau = score_tau_star(a, b, label)
    assert (tau.value, tau.params["epsilon"], tau.params["predicted_ties"]) == (0.75, 0.5, 3)
    # VideoAlign ties the sorted pairs one by one, in input order: k = 1: C = 2, T_hm = 1 ->
    # 3/4; k = 2: C = 2, T_hm = 2 -> 4/4 (only two of the three 0.5 pairs tied).
    va = score_tau_star_videoalign(a, b, label)
    assert (va.value, va.params["epsilon"]) == (1.0, 0.5)
    # Put the decided 0.5 pair first: k = 1: 1/4, k = 2: 2/4, k = 3: 3/4, k = 4: 2/4 -> 3/4.
    va = score_tau_star_videoalign([0.5, 0.5, 0.5, 1.0], [0.0] * 4, [1, 0, 0, 1])
    assert va.value == 0.75


def test_tau_star_can_tie_nothing_and_videoalign_cannot() -> None:
    # All decided and right: tau_star ties nothing (3/3 at eps = -1); VideoAlign must tie at
    # least the smallest |delta| pair: 2/3 at eps = 1.
    tau = score_tau_star([1.0, 2.0, 3.0], [0.0] * 3, [1, 1, 1])
    assert (tau.value, tau.params["epsilon"], tau.params["predicted_ties"]) == (1.0, -1.0, 0)
    va = score_tau_star_videoalign([1.0, 2.0, 3.0], [0.0] * 3, [1, 1, 1])
    assert (va.value, va.params["epsilon"]) == (pytest.approx(2 / 3), 1.0)


def test_diff_model_tie_conventions() -> None:
    # delta 1, 2, -1, 0, 0 with labels A, A, A, B, tie: C = 2, D = 1, one model tie on a
    # decided pair (T_m = 1), one human tie (its delta = 0 is a model tie too).
    a, b, label = [1.0, 2.0, -1.0, 0.0, 0.0], [0.0] * 5, [1, 1, 1, -1, 0]
    drop = score_diff(a, b, label)  # the default: C / (C + D) = 2/3
    half = score_diff(a, b, label, model_ties="half")  # (2 + 0.5) / 4 = 5/8
    wrong = score_diff(a, b, label, model_ties=ModelTies.wrong)  # 2/4
    assert (drop.value, half.value, wrong.value) == (pytest.approx(2 / 3), 0.625, 0.5)
    assert drop.params == {"model_ties": ModelTies.drop}
    assert drop.to_dict()["params"] == {"model_ties": "drop"}
    assert drop.counts == {"pairs": 5, "human_ties": 1, "model_ties": 2, "skipped": 2}
    assert half.counts["skipped"] == wrong.counts["skipped"] == 1
    without = score_without_ties(a, b, label)
    assert (without.protocol, without.value, without.skipped) == (Protocol.without_ties, 0.5, 1)


def test_diff_is_nan_when_nothing_is_left() -> None:
    # Every decided pair is a model tie: drop leaves nothing; the others still count them.
    assert math.isnan(score_diff([1.0, 1.0], [1.0, 1.0], [1, -1]).value)
    assert score_diff([1.0, 1.0], [1.0, 1.0], [1, -1], model_ties="half").value == 0.5
    assert math.isnan(score_without_ties([1.0], [2.0], [0]).value)


def test_hpdv2_hand_case() -> None:
    # List 0: scores 3, 1, 1 and ranks 1, 2, 2: both decided pairs agree, the human-tied pair
    # (1, 2) counts as agreement even though the reward ties it too -> 1.
    # List 1: scores 1, 1, 0 and ranks 2, 1, 3: the reward tie (0, 1) ranks image 0 first,
    # humans rank image 1 first -> 1 discordant of 3 -> 2/3. Mean over lists: 5/6.
    score = [3.0, 1.0, 1.0, 1.0, 1.0, 0.0]
    rank = [1, 2, 2, 2, 1, 3]
    group = [7, 7, 7, 3, 3, 3]
    got = score_hpdv2(score, rank, group)
    assert got.value == pytest.approx(5 / 6)
    assert got.counts == {"pairs": 6, "human_ties": 1, "model_ties": 2, "skipped": 0, "prompts": 2}
    # Swap the human ranks of the tied images: the list-order tie break now agrees -> 1.
    assert score_hpdv2(score, [1, 2, 2, 1, 2, 3], group).value == 1.0
    # A list that humans tied throughout scores 1 whatever the reward says.
    assert score_hpdv2([0.0, 5.0, 1.0], [2, 2, 2], ["p", "p", "p"]).value == 1.0


def test_hpdv2_needs_two_images_per_list() -> None:
    with pytest.raises(ValueError, match=r"ranked list 'solo' has 1 image\(s\)"):
        score_hpdv2([1.0, 2.0, 3.0], [1, 2, 1], ["pair", "pair", "solo"])


def test_imagereward_hand_case() -> None:
    # List a: scores 0.9, 0.5, 0.5 and ranking 1, 2, 3: (0,1) right, (0,2) right, (1,2) a reward
    # tie -> wrong. List b: ranking 1, 1 -> skipped. List c: scores 0.3, 0.7 and ranking 2, 1 ->
    # right. Pooled: 3 right of 4 counted.
    score = [0.9, 0.5, 0.5, 0.1, 0.2, 0.3, 0.7]
    rank = [1, 2, 3, 1, 1, 2, 1]
    group = ["a", "a", "a", "b", "b", "c", "c"]
    got = score_imagereward(score, rank, group)
    assert got.value == 0.75
    assert got.counts == {"pairs": 5, "human_ties": 1, "model_ties": 1, "skipped": 1, "prompts": 3}
    # Pooled, not a mean over lists: list a alone is 2/3, list c 1, their mean would be 5/6.
    assert (
        score_imagereward([0.9, 0.5, 0.5, 0.3, 0.7], [1, 2, 3, 2, 1], [0, 0, 0, 1, 1]).value == 0.75
    )


def test_pickapic_hand_case_and_smallest_threshold() -> None:
    # The gap |p1 - p0| is |tanh(delta / 2)|: delta 0 -> 0 (a tie even at threshold 0, the
    # boundary), 0.1 -> 0.050, 1 -> 0.462.
    a = [0.0, 0.1, 1.0, 0.1]
    b = [0.0, 0.0, 0.0, 0.0]
    label = [0, 1, 0, 0]  # tie, A, tie, tie
    # threshold 0: tie=tie 1, A=A 1, A vs tie 0.5, A vs tie 0.5 -> 3/4.
    # 0.1 .. 0.4: 1, tie vs A 0.5, A vs tie 0.5, tie=tie 1 -> 3/4.
    # 0.5 .. 1: 1, 0.5, 1, 1 -> 7/8.
    assert score_pickapic(a, b, label, threshold=0).value == 0.75
    assert score_pickapic(a, b, label, threshold=0.3).value == 0.75
    got = score_pickapic(a, b, label, threshold=0.5)
    assert (got.value, got.params["predicted_ties"]) == (0.875, 4)
    chosen = select_pickapic_threshold(a, b, label)
    # 0.5 .. 1.0 all reach 7/8: the smallest wins.
    assert (chosen.threshold, chosen.accuracy) == (0.5, 0.875)
    assert [t for t, _ in chosen.accuracies] == list(PICKAPIC_THRESHOLDS)
    # Without the last pair, threshold 0 (3/3 -> 2.5/3) ties with 0.5 .. 1 (2.5/3): 0 wins.
    assert select_pickapic_threshold(a[:3], b[:3], label[:3]).threshold == 0.0
    # Candidates in any order: still the smallest of the best.
    assert select_pickapic_threshold(a, b, label, [1.0, 0.7, 0.5, 0.2]).threshold == 0.5


# ----------------------------------------------------------------------------- registry, errors


def test_registry_holds_every_protocol_once() -> None:
    assert list(PROTOCOLS) == list(Protocol)
    assert Protocol.values() == [
        "tau_star",
        "tau_star_videoalign",
        "diff",
        "without_ties",
        "hpdv2",
        "imagereward",
        "pickapic",
    ]
    for name, spec in PROTOCOLS.items():
        assert spec.name == name
        assert spec.resample == ("prompts" if name == Protocol.hpdv2 else "pairs")


def test_score_protocol_dispatches_with_options() -> None:
    a, b, label = [1.0, 0.0, 2.0], [0.0, 0.0, 0.0], [1, 1, 0]
    assert score_protocol("diff", a, b, label, model_ties="wrong").value == 0.5
    assert score_protocol(Protocol.pickapic, a, b, label, threshold=0.0).value == pytest.approx(
        brute_pickapic(a, b, label, 0.0)
    )
    assert score_protocol("hpdv2", [1.0, 0.0], [1, 2], [0, 0]).value == 1.0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: score_protocol("kendall", [1.0], [0.0], [1]), "unknown protocol 'kendall'"),
        (
            lambda: score_protocol("diff", [1.0], [0.0], [1], model_tie="half"),
            r"takes options \['model_ties'\], got unknown \['model_tie'\]",
        ),
        (lambda: score_diff([1.0], [0.0], [1], model_ties="coin"), "model_ties must be one of"),
        (lambda: score_protocol("tau_star", [1.0], [0.0]), r"takes \(score_a, score_b, label\)"),
        (
            lambda: score_pickapic([1.0], [0.0], [1], threshold=1.5),
            r"threshold must be in \[0, 1\]",
        ),
        (
            lambda: score_tau_star([1.0, float("nan")], [0.0, 0.0], [1, 1]),
            r"score_a is not finite at index \[1\]",
        ),
        (lambda: score_diff([1.0, 2.0], [0.0], [1, 1]), "score_a and score_b must share a shape"),
        (lambda: score_diff([1.0], [0.0], [2]), r"label must be -1, 0 or \+1; got \[2\]"),
        (lambda: score_hpdv2([1.0, 2.0], [1, 2], [0]), "one entry per image"),
        (lambda: score_imagereward([1.0, 2.0], [1, float("inf")], [0, 0]), "rank is not finite"),
    ],
)
def test_bad_inputs_are_named(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


# ----------------------------------------------------------------------------- intervals


def test_intervals_bracket_the_value_and_are_deterministic() -> None:
    g = np.random.default_rng(0)
    a, b = g.integers(0, 5, 300) / 2, g.integers(0, 5, 300) / 2
    label = g.integers(-1, 2, 300)
    for name, options in [
        ("tau_star", {}),
        ("tau_star_videoalign", {}),
        ("diff", {"model_ties": "half"}),
        ("without_ties", {}),
        ("pickapic", {"threshold": 0.2}),
    ]:
        value = score_protocol(name, a, b, label, **options).value
        low, high = protocol_interval(name, a, b, label, num_resamples=200, **options)
        assert low <= value <= high and low < high, name
        assert protocol_interval(name, a, b, label, num_resamples=200, **options) == (low, high)


def test_hpdv2_interval_resamples_whole_lists() -> None:
    # Two lists worth 1 and 1/3: a resample of lists can only average to 1, 2/3 or 1/3.
    score = [3.0, 2.0, 1.0, 1.0, 2.0, 3.0]
    rank = [1, 2, 3, 1, 2, 2]
    group = [0, 0, 0, 1, 1, 1]
    assert score_hpdv2(score, rank, group).value == pytest.approx(2 / 3)
    low, high = protocol_interval("hpdv2", score, rank, group, num_resamples=300)
    assert (low, high) == (pytest.approx(1 / 3), 1.0)


# ----------------------------------------------------------------------------- diff_accuracy


def test_diff_accuracy_model_ties_option_and_metric_class() -> None:
    delta = torch.tensor([1.0, 2.0, -1.0, 0.0, 0.0], dtype=torch.float64)
    label = torch.tensor([1, 1, 1, -1, 0])
    # The default is unchanged: half credit, 5/8.
    assert diff_accuracy(delta, label).item() == 0.625
    want = {"drop": 2 / 3, "half": 0.625, "wrong": 0.5}
    for option, value in want.items():
        assert diff_accuracy(delta, label, option).item() == pytest.approx(value)
        metric = DiffAccuracy(model_ties=option)
        metric.update(delta[:2], torch.zeros(2), label[:2])
        metric.update(delta[2:], torch.zeros(3), label[2:])
        assert metric.compute().item() == pytest.approx(value)
    assert DiffAccuracy().model_ties == ModelTies.half
    with pytest.raises(ValueError, match=r"model_ties must be one of \['drop', 'half', 'wrong'\]"):
        DiffAccuracy(model_ties="coin")
