"""Preference metrics: tau* with grouped tie calibration, diff accuracy, Metric classes, bootstrap."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchmetrics import MetricCollection

from vrexp.metrics import (
    NO_TIES_EPSILON,
    DiffAccuracy,
    TauStarAccuracy,
    bootstrap_interval,
    diff_accuracy,
    per_dimension_accuracy,
    preference_report,
    tau_star,
    tau_star_accuracy,
)


def t(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def lab(values: list[int]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.int64)


def brute_force_tau_star(delta: list[float], label: list[int]) -> tuple[int, float]:
    """(number correct, smallest best epsilon) by trying every candidate threshold, in pure Python."""
    best_correct, best_eps = -1, math.nan
    for eps in [NO_TIES_EPSILON, *sorted({abs(d) for d in delta})]:
        correct = 0
        for d, h in zip(delta, label, strict=True):
            metric_tie = abs(d) <= eps
            if h == 0 and metric_tie:
                correct += 1  # T_hm
            elif h != 0 and not metric_tie and h * d > 0:
                correct += 1  # C
        if correct > best_correct:
            best_correct, best_eps = correct, eps
    return best_correct, best_eps


def naive_one_at_a_time_tau(delta: list[float], label: list[int]) -> float:
    """The flawed sweep: moves pairs under the threshold one by one, even when |delta| is equal."""
    order = sorted(range(len(delta)), key=lambda i: abs(delta[i]))  # stable
    correct = sum(1 for d, h in zip(delta, label, strict=True) if h != 0 and h * d > 0)
    best = correct
    for i in order:
        if label[i] == 0:
            correct += 1  # T_h -> T_hm
        elif label[i] * delta[i] > 0:
            correct -= 1  # C -> T_m
        best = max(best, correct)
    return best / len(delta)


# ----------------------------------------------------------------------------- tau*, by hand


def test_tau_star_equal_magnitudes_are_tied_together() -> None:
    # eps >= 0.5 ties all three 0.5 pairs: (C=1 [the 1.0 pair] + T_hm=2) / 4.
    delta, label = [0.5, 0.5, 0.5, 1.0], [0, 0, 1, 1]
    acc, eps = tau_star(t(delta), lab(label))
    assert acc.item() == 0.75
    assert eps.item() == 0.5
    # The one-at-a-time sweep "ties" the two human-tie pairs but not the concordant 0.5 pair,
    # which no real threshold can do, and reports a perfect (wrong) score.
    assert naive_one_at_a_time_tau(delta, label) == 1.0


def test_tau_star_sign_does_not_split_a_magnitude_group() -> None:
    # -0.5 and +0.5 share |delta|; naive would again reach 1.0.
    delta, label = [0.5, -0.5, 0.5, 1.0], [0, 0, 1, 1]
    acc, eps = tau_star(t(delta), lab(label))
    assert (acc.item(), eps.item()) == (0.75, 0.5)
    assert naive_one_at_a_time_tau(delta, label) == 1.0


def test_tau_star_picks_interior_threshold() -> None:
    # eps=-1: C=1, D=1 -> 1/4; eps=0.1 -> 2/4; eps=0.2 -> T_hm=2 + C=1 -> 3/4; eps=0.3 -> 2/4.
    acc, eps = tau_star(t([0.1, -0.2, 0.3, 2.0]), lab([0, 0, 1, -1]))
    assert acc.item() == 0.75
    assert eps.item() == 0.2


def test_tau_star_no_ties_reports_negative_epsilon() -> None:
    acc, eps = tau_star(t([1.0, 2.0, -3.0]), lab([1, 1, -1]))
    assert acc.item() == 1.0
    assert eps.item() == NO_TIES_EPSILON


def test_tau_star_returns_smallest_of_equally_good_thresholds() -> None:
    # eps=-1 -> 1/2 (the delta=0 pair is discordant), eps=0 -> 1/2 (it is T_m), eps=1 -> 0.
    acc, eps = tau_star(t([0.0, 1.0]), lab([1, 1]))
    assert acc.item() == 0.5
    assert eps.item() == NO_TIES_EPSILON


def test_tau_star_all_human_ties_ties_everything() -> None:
    acc, eps = tau_star(t([0.3, -2.0, 1.0]), lab([0, 0, 0]))
    assert acc.item() == 1.0
    assert eps.item() == 2.0


def test_tau_star_empty_is_nan() -> None:
    acc, eps = tau_star(t([]), lab([]))
    assert math.isnan(acc.item())
    assert math.isnan(eps.item())


def test_tau_star_float32_and_float_labels_are_accepted() -> None:
    acc, eps = tau_star(torch.tensor([0.5, 0.5, 0.5, 1.0]), torch.tensor([0.0, 0.0, 1.0, 1.0]))
    assert acc.dtype == torch.float64
    assert (acc.item(), eps.item()) == (0.75, 0.5)


# ----------------------------------------------------------------------------- tau*, property


@settings(max_examples=300, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(st.integers(-3, 3), st.sampled_from([-1, 0, 1])), min_size=1, max_size=40
    ),
    scale=st.sampled_from([1.0, 0.25, 0.1]),
)
def test_tau_star_matches_brute_force(pairs: list[tuple[int, int]], scale: float) -> None:
    delta = [d * scale for d, _ in pairs]
    label = [h for _, h in pairs]
    correct, eps = brute_force_tau_star(delta, label)
    acc, got_eps = tau_star(t(delta), lab(label))
    assert acc.item() == correct / len(delta)
    assert got_eps.item() == eps
    # The naive sweep can only be as good or (wrongly) better.
    assert naive_one_at_a_time_tau(delta, label) >= acc.item()


def test_tau_star_on_large_quantised_input_ignores_pair_order() -> None:
    g = torch.Generator().manual_seed(1)
    delta = torch.randint(-50, 51, (200_000,), generator=g).double()
    label = torch.randint(-1, 2, (200_000,), generator=g)
    acc, eps = tau_star(delta, label)
    order = torch.randperm(len(delta), generator=g)
    assert (acc, eps) == tau_star(delta[order], label[order])
    assert 0.0 < acc.item() <= 1.0


# ----------------------------------------------------------------------------- diff


def test_diff_accuracy_hand_cases() -> None:
    # Decided pairs: right, wrong, exact score tie (0.5); the human tie is dropped.
    assert diff_accuracy(t([1.0, -1.0, 0.0, 2.0]), lab([1, 1, 1, 0])).item() == 0.5
    assert diff_accuracy(t([0.3, -0.2, 0.0]), lab([1, -1, -1])).item() == pytest.approx(5 / 6)
    assert diff_accuracy(t([0.3, -0.2]), lab([-1, 1])).item() == 0.0


def test_diff_accuracy_only_ties_is_nan() -> None:
    assert math.isnan(diff_accuracy(t([1.0, -2.0]), lab([0, 0])).item())
    assert math.isnan(diff_accuracy(t([]), lab([])).item())


# ----------------------------------------------------------------------------- validation


def test_nan_delta_names_the_index() -> None:
    with pytest.raises(ValueError, match=r"NaN at index \[2\]"):
        tau_star(t([0.1, 0.2, float("nan")]), lab([1, 0, 1]))
    with pytest.raises(ValueError, match="NaN"):
        diff_accuracy(t([float("nan")]), lab([1]))


def test_bad_label_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"label must be -1, 0 or \+1; got \[2\] at index \[1\]"):
        tau_star(t([0.1, 0.2]), lab([1, 2]))
    with pytest.raises(ValueError, match="label must be -1, 0 or"):
        diff_accuracy(t([0.1]), torch.tensor([0.5]))


def test_shape_errors_are_rejected() -> None:
    with pytest.raises(ValueError, match="share a shape"):
        tau_star(t([0.1, 0.2]), lab([1]))
    with pytest.raises(ValueError, match="1-D"):
        diff_accuracy(torch.zeros(2, 2, dtype=torch.float64), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="score_a and score_b must share a shape"):
        TauStarAccuracy().update(torch.zeros(3), torch.zeros(2), lab([1, 1, 1]))
    with pytest.raises(ValueError, match="NaN at index"):
        DiffAccuracy().update(torch.tensor([float("inf")]), torch.tensor([float("inf")]), lab([1]))


# ----------------------------------------------------------------------------- Metric classes


def random_pairs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(0, 6, (n,), generator=g).float()
    b = torch.randint(0, 6, (n,), generator=g).float()
    label = torch.randint(-1, 2, (n,), generator=g)
    return a, b, label


def test_metrics_accumulate_like_one_shot_and_reset() -> None:
    a, b, label = random_pairs(300, seed=3)
    tau_metric, diff_metric = TauStarAccuracy(), DiffAccuracy()
    for chunk in torch.split(torch.arange(300), 70):
        tau_metric.update(a[chunk], b[chunk], label[chunk])
        diff_metric.update(a[chunk], b[chunk], label[chunk])
    want_acc, want_eps = tau_star(a - b, label)
    acc, eps = tau_metric.compute_with_threshold()
    assert acc.item() == want_acc.item()
    assert eps.item() == want_eps.item()
    assert tau_metric.epsilon is not None and tau_metric.epsilon.item() == want_eps.item()
    assert diff_metric.compute().item() == diff_accuracy(a - b, label).item()

    tau_metric.reset()
    diff_metric.reset()
    assert tau_metric.epsilon is None
    a2, b2, label2 = random_pairs(50, seed=4)
    tau_metric.update(a2, b2, label2)
    diff_metric.update(a2, b2, label2)
    assert tau_metric.compute().item() == tau_star(a2 - b2, label2)[0].item()
    assert diff_metric.compute().item() == diff_accuracy(a2 - b2, label2).item()


def test_metrics_in_a_collection() -> None:
    a, b, label = random_pairs(200, seed=5)
    collection = MetricCollection({"tau": TauStarAccuracy(), "diff": DiffAccuracy()})
    for chunk in torch.split(torch.arange(200), 64):
        collection.update(a[chunk], b[chunk], label[chunk])
    out = collection.compute()
    assert out["tau"].item() == tau_star(a - b, label)[0].item()
    assert out["diff"].item() == diff_accuracy(a - b, label).item()
    collection.reset()
    collection.update(a[:10], b[:10], label[:10])
    assert collection.compute()["diff"].item() == diff_accuracy(a[:10] - b[:10], label[:10]).item()


def test_metric_flags() -> None:
    for metric in (TauStarAccuracy(), DiffAccuracy()):
        assert metric.higher_is_better is True
        assert metric.full_state_update is False


# ----------------------------------------------------------------------------- per dimension


def test_per_dimension_accuracy() -> None:
    label = lab([1, -1, 1, 0])
    dim_a = t([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0], [1.0, 1.0]])
    dim_b = t([[1.0, 1.0], [1.0, 0.0], [0.0, 5.0], [1.0, 1.0]])
    # Column 0 always agrees with the human, column 1 always disagrees.
    assert per_dimension_accuracy(dim_a, dim_b, label, "diff").tolist() == [1.0, 0.0]
    tau = per_dimension_accuracy(dim_a, dim_b, label, "tau_star")
    assert tau.tolist() == [tau_star(dim_a[:, d] - dim_b[:, d], label)[0].item() for d in range(2)]
    # Column 1 has deltas [-1, 1, -5, 0]: every decided pair is discordant, so the best is to
    # tie only the human tie (eps = 0): T_hm = 1 of 4. Column 0 ties it too and gets all 4.
    assert tau.tolist() == [1.0, 0.25]
    with pytest.raises(ValueError, match="metric must be one of"):
        per_dimension_accuracy(dim_a, dim_b, label, "kendall")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        per_dimension_accuracy(dim_a, dim_b[:, :1], label)


# ----------------------------------------------------------------------------- bootstrap, report


def realistic_pairs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A noisy scorer of a latent preference; humans call it a tie when the gap is small."""
    g = torch.Generator().manual_seed(seed)
    latent = torch.randn(n, generator=g, dtype=torch.float64)
    label = torch.where(latent.abs() < 0.3, 0, torch.sign(latent)).to(torch.int64)
    delta = latent + 0.8 * torch.randn(n, generator=g, dtype=torch.float64)
    return delta, label


@pytest.mark.parametrize("fn", [tau_star_accuracy, diff_accuracy])
def test_bootstrap_interval_contains_estimate_and_narrows(fn) -> None:
    small_delta, small_label = realistic_pairs(200, seed=0)
    big_delta, big_label = realistic_pairs(3000, seed=0)
    small = bootstrap_interval(fn, small_delta, small_label, num_resamples=300)
    big = bootstrap_interval(fn, big_delta, big_label, num_resamples=300)
    for (low, high), delta, label in [
        (small, small_delta, small_label),
        (big, big_delta, big_label),
    ]:
        assert low <= fn(delta, label).item() <= high
    assert big[1] - big[0] < 0.6 * (small[1] - small[0])
    assert big[1] - big[0] > 0.0


def test_bootstrap_interval_is_deterministic_and_seeded() -> None:
    delta, label = realistic_pairs(500, seed=1)
    first = bootstrap_interval(diff_accuracy, delta, label, num_resamples=200, seed=7)
    assert bootstrap_interval(diff_accuracy, delta, label, num_resamples=200, seed=7) == first
    assert bootstrap_interval(diff_accuracy, delta, label, num_resamples=200, seed=8) != first
    # A user-supplied fn takes the generic path and must give the same interval.
    generic = bootstrap_interval(
        lambda d, h: diff_accuracy(d, h), delta, label, num_resamples=200, seed=7
    )
    assert generic == first


def test_bootstrap_interval_rejects_bad_arguments() -> None:
    delta, label = realistic_pairs(10, seed=3)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_interval(diff_accuracy, delta, label, confidence=1.5)
    with pytest.raises(ValueError, match="num_resamples"):
        bootstrap_interval(diff_accuracy, delta, label, num_resamples=0)
    with pytest.raises(ValueError, match="empty"):
        bootstrap_interval(diff_accuracy, t([]), lab([]))


def test_preference_report() -> None:
    delta, label = realistic_pairs(400, seed=4)
    report = preference_report(delta, label, num_resamples=200, seed=0)
    assert set(report) == {
        "tau_star",
        "tau_star_low",
        "tau_star_high",
        "epsilon",
        "diff",
        "diff_low",
        "diff_high",
        "num_pairs",
        "num_ties",
    }
    acc, eps = tau_star(delta, label)
    assert report["tau_star"] == acc.item()
    assert report["epsilon"] == eps.item()
    assert report["diff"] == diff_accuracy(delta, label).item()
    assert report["tau_star_low"] <= report["tau_star"] <= report["tau_star_high"]
    assert report["diff_low"] <= report["diff"] <= report["diff_high"]
    assert report["num_pairs"] == 400
    assert report["num_ties"] == int((label == 0).sum())
    # The scorer is informative, so it beats chance on decided pairs.
    assert report["diff_low"] > 0.6


def test_paired_difference_scores_both_rewards_on_each_resample():
    from vrexp.metrics import bootstrap_interval, paired_difference

    g = torch.Generator().manual_seed(3)
    truth = torch.randn(400, generator=g)
    label = torch.sign(truth + 0.5 * torch.randn(400, generator=g))
    label[torch.rand(400, generator=g) < 0.2] = 0
    a = truth + 0.3 * torch.randn(400, generator=g)
    b = a + 0.3 * torch.randn(400, generator=g)  # a noisier copy: errs where a does, and more
    same = paired_difference(a, a, label, "tau_star", num_resamples=50)
    assert (same["difference"], same["low"], same["high"]) == (0.0, 0.0, 0.0)
    for metric, fn in (("tau_star", tau_star_accuracy), ("diff", diff_accuracy)):
        got = paired_difference(a, b, label, metric, num_resamples=300, seed=5)
        assert got["difference"] == pytest.approx(float(fn(a, label) - fn(b, label)))
        # Brute force: the same resampled pairs for both rewards (the one bootstrap's draw).
        index = torch.randint(0, 400, (300, 400), generator=torch.Generator().manual_seed(5))
        stats = torch.tensor([float(fn(a[i], label[i]) - fn(b[i], label[i])) for i in index])
        low, high = torch.quantile(stats.double(), torch.tensor([0.025, 0.975]).double())
        assert (got["low"], got["high"]) == pytest.approx((float(low), float(high)))
        # Paired is narrower than what two marginal intervals would allow.
        la, ha = bootstrap_interval(fn, a, label, num_resamples=300, seed=5)
        lb, hb = bootstrap_interval(fn, b, label, num_resamples=300, seed=5)
        assert got["high"] - got["low"] < (ha - la) / 2 + (hb - lb) / 2
    with pytest.raises(ValueError, match="metric must be one of"):
        paired_difference(a, b, label, "accuracy")
    with pytest.raises(ValueError, match="same pairs"):
        paired_difference(a, b[:10], label, "diff")


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 5), st.floats(-3, 3), st.floats(-3, 3)), min_size=1, max_size=30
    ),
    st.integers(0, 100),
)
def test_mean_difference_is_paired_over_whole_prompts(samples, seed):
    from vrexp.metrics import mean_difference, win_rate

    groups = torch.tensor([g for g, _, _ in samples])
    ours, base = t([a for _, a, _ in samples]), t([b for _, _, b in samples])
    got, low, high = mean_difference(ours, base, groups, num_resamples=200, seed=seed)
    assert got == pytest.approx(float((ours - base).mean()))
    # The interval is that of per-prompt mean differences resampled (the one bootstrap's draw).
    keys = sorted(set(groups.tolist()))
    per_prompt = t([float((ours - base)[groups == k].mean()) for k in keys])
    index = torch.randint(
        0, len(keys), (200, len(keys)), generator=torch.Generator().manual_seed(seed)
    )
    stats = torch.stack([per_prompt[i].mean() for i in index])
    expected = torch.nanquantile(stats, torch.tensor([0.025, 0.975], dtype=torch.float64))
    assert (low, high) == pytest.approx(tuple(expected.tolist()), abs=1e-12)
    # Swapping the generators mirrors the difference and its interval; adding a constant to both
    # changes nothing: only the pairing counts.
    back = mean_difference(base, ours, groups, num_resamples=200, seed=seed)
    assert back == pytest.approx((-got, -high, -low), abs=1e-12)
    shifted = mean_difference(ours + 7, base + 7, groups, num_resamples=200, seed=seed)
    assert shifted == pytest.approx((got, low, high), abs=1e-9)
    # The win rate of a generator over itself is a tie on every sample.
    assert win_rate(ours, ours, groups, num_resamples=20) == (0.5, 0.5, 0.5)


def test_generator_comparisons_refuse_unpaired_or_nan_samples():
    from vrexp.metrics import mean_difference, win_rate

    with pytest.raises(ValueError, match="same samples: 3 and 2"):
        mean_difference(t([1, 2, 3]), t([1, 2]), [0, 1, 2])
    with pytest.raises(ValueError, match="one group per sample: 2 groups for 3 samples"):
        win_rate(t([1, 2, 3]), t([1, 2, 3]), [0, 1])
    with pytest.raises(ValueError, match="NaN"):
        mean_difference(t([1, math.nan]), t([1, 2]), [0, 1])
    with pytest.raises(ValueError, match="empty"):
        win_rate(t([]), t([]), [])
