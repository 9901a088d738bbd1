"""Pairwise preference accuracy: tie-calibrated tau*, diff accuracy, and their bootstrap intervals.

This module owns the paper's preference metrics (docs/method.md §6) and nothing else:

* :func:`tau_star` -- accuracy with ties plus tie calibration (Deutsch et al. 2023, "Ties Matter");
* :func:`diff_accuracy` -- accuracy over pairs whose human label is not a tie ("diff**"), with the
  convention for a reward tie on such a pair (:class:`ModelTies`, whose home is
  :mod:`vrexp.configs.choices` so configs can name it);
* the same two as torchmetrics ``Metric`` classes (:class:`TauStarAccuracy`, :class:`DiffAccuracy`);
* :func:`per_dimension_accuracy`, :func:`bootstrap_interval` and :func:`preference_report`.

Conventions shared by every function: ``delta = score_a - score_b`` is a 1-D tensor, and ``label``
is a 1-D tensor of the human judgement, ``+1`` (A preferred), ``-1`` (B preferred) or ``0`` (tie).
All arithmetic is done in float64 and all counts in int64, so that equal accuracies compare equal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from vrexp.configs.choices import ModelTies

__all__ = [
    "NO_TIES_EPSILON",
    "DiffAccuracy",
    "ModelTies",
    "TauStarAccuracy",
    "bootstrap_interval",
    "diff_accuracy",
    "per_dimension_accuracy",
    "preference_report",
    "tau_star",
    "tau_star_accuracy",
]

# |delta| >= 0, so any negative threshold ties no pair. A finite sentinel (rather than -inf) keeps
# the value loggable as JSON / to W&B.
NO_TIES_EPSILON = -1.0


# diff_accuracy's default: the convention evaluate and fit_weights have always reported
# (docs/method.md §6.2). The benchmark protocol ``diff`` (vrexp.metrics.protocols) defaults to
# ``drop`` instead, the paper's definition.
DEFAULT_MODEL_TIES = ModelTies.half


def model_ties_option(value: ModelTies | str) -> ModelTies:
    """``value`` as a :class:`ModelTies`, or a ValueError naming the allowed values."""
    try:
        return ModelTies(value)
    except ValueError:
        raise ValueError(f"model_ties must be one of {ModelTies.values()}, got {value!r}") from None


def _validate(delta: Tensor, label: Tensor) -> tuple[Tensor, Tensor]:
    """Check the shared input contract; return ``(delta as float64, label as int64)``."""
    if not isinstance(delta, Tensor) or not isinstance(label, Tensor):
        raise ValueError(
            f"delta and label must be tensors, got {type(delta).__name__}, {type(label).__name__}"
        )
    if delta.ndim != 1 or label.ndim != 1:
        raise ValueError(
            f"delta and label must be 1-D, got shapes {tuple(delta.shape)}, {tuple(label.shape)}"
        )
    if delta.shape != label.shape:
        raise ValueError(
            f"delta and label must share a shape, got {tuple(delta.shape)}, {tuple(label.shape)}"
        )
    if label.is_floating_point() and torch.isnan(label).any():
        bad = torch.nonzero(torch.isnan(label)).flatten()[:5].tolist()
        raise ValueError(f"label contains NaN at index {bad}; labels must be -1, 0 or +1")
    bad_label = (label != -1) & (label != 0) & (label != 1)
    if bad_label.any():
        idx = torch.nonzero(bad_label).flatten()[:5].tolist()
        values = label[bad_label][:5].tolist()
        raise ValueError(f"label must be -1, 0 or +1; got {values} at index {idx}")
    delta = delta.to(torch.float64)
    nan = torch.isnan(delta)
    if nan.any():
        idx = torch.nonzero(nan).flatten()[:5].tolist()
        raise ValueError(f"delta contains NaN at index {idx} (e.g. inf - inf scores)")
    return delta, label.to(torch.int64)


def _tau_star_unchecked(delta: Tensor, label: Tensor) -> tuple[Tensor, Tensor]:
    """:func:`tau_star` on already-validated float64 / int64 inputs."""
    n = delta.numel()
    if n == 0:
        nan = torch.tensor(float("nan"), dtype=torch.float64, device=delta.device)
        return nan, nan.clone()
    magnitude, order = torch.sort(delta.abs())
    sorted_label = label[order]
    # Concordant when not tied; delta == 0 has sign 0, so with a non-tie label it is discordant
    # until a threshold >= 0 ties it (same as ``h * m > 0`` in the reference implementation).
    concordant = (torch.sign(delta[order]).to(torch.int64) == sorted_label) & (sorted_label != 0)
    human_tie = sorted_label == 0
    # Moving a pair under the threshold turns a concordant pair into T_m (-1 correct) and a T_h
    # pair into T_hm (+1 correct); discordant pairs change nothing.
    gain = human_tie.to(torch.int64) - concordant.to(torch.int64)
    # A real threshold cannot split equal |delta| values, so only evaluate at the end of each
    # run of equal magnitudes. Evaluating after every single pair (the naive sweep) lets the
    # optimiser pick an impossible split and overstates tau* for quantised scores.
    values, counts = torch.unique_consecutive(magnitude, return_counts=True)
    group_end = torch.cumsum(counts, 0) - 1
    correct_if_nothing_tied = concordant.sum()
    # Candidate 0 is "nothing tied" (epsilon < 0); candidate k >= 1 ties every |delta| <= values[k-1].
    correct = torch.cat(
        [
            correct_if_nothing_tied.reshape(1),
            correct_if_nothing_tied + torch.cumsum(gain, 0)[group_end],
        ]
    )
    # Integer counts, so argmax ties are exact; argmax returns the first (= smallest epsilon).
    best = int(torch.argmax(correct))
    thresholds = torch.cat([values.new_tensor([NO_TIES_EPSILON]), values])
    return correct[best].to(torch.float64) / n, thresholds[best]


def tau_star(delta: Tensor, label: Tensor) -> tuple[Tensor, Tensor]:
    """Tie-calibrated pairwise accuracy tau* and the threshold epsilon that achieves it.

    For a threshold ``eps`` the metric calls a pair tied iff ``|delta| <= eps``, and
    ``acc(eps) = (C + T_hm) / N``: concordant non-tie pairs plus pairs tied by both human and
    metric, over all ``N`` pairs. tau* is the maximum over the candidate thresholds: "nothing
    tied" (reported as :data:`NO_TIES_EPSILON`, -1.0) and every distinct ``|delta|`` value. Of
    equally good thresholds the smallest is returned.

    Unlike the one-at-a-time sweep of the reference ``calc_accuracy_with_ties`` (VideoAlign), all
    pairs sharing a ``|delta|`` fall on the same side of the threshold, and the "nothing tied"
    candidate is included. O(N log N). Empty input gives ``(nan, nan)``.
    Returns two float64 scalar tensors ``(accuracy, epsilon)``.
    """
    return _tau_star_unchecked(*_validate(delta, label))


def tau_star_accuracy(delta: Tensor, label: Tensor) -> Tensor:
    """Only the accuracy of :func:`tau_star` (a scalar-valued ``fn`` for :func:`bootstrap_interval`)."""
    return tau_star(delta, label)[0]


def _diff_accuracy_unchecked(
    delta: Tensor, label: Tensor, model_ties: ModelTies = DEFAULT_MODEL_TIES
) -> Tensor:
    """:func:`diff_accuracy` on already-validated float64 / int64 inputs and option."""
    keep = label != 0
    if model_ties == ModelTies.drop:
        keep &= delta != 0
    if not keep.any():
        return torch.tensor(float("nan"), dtype=torch.float64, device=delta.device)
    d, h = delta[keep], label[keep]
    # sign(0) = 0 never equals a decided label, so a model tie is wrong unless ``half`` credits it.
    correct = (torch.sign(d).to(torch.int64) == h).to(torch.float64)
    if model_ties == ModelTies.half:
        correct += 0.5 * (d == 0)
    return correct.mean()


def diff_accuracy(
    delta: Tensor, label: Tensor, model_ties: ModelTies | str = DEFAULT_MODEL_TIES
) -> Tensor:
    """Accuracy over pairs whose human label is not a tie ("diff**"), as a float64 scalar tensor.

    Over pairs with ``label != 0``: concordant pairs C, discordant pairs D and exact reward ties
    T_m (``delta == 0``). ``model_ties`` (:class:`ModelTies`) picks how T_m counts: ``half``
    (the default) gives ``(C + T_m / 2) / (C + D + T_m)``, ``drop`` gives ``C / (C + D)``,
    ``wrong`` gives ``C / (C + D + T_m)``. NaN when no pair is left to count.
    """
    return _diff_accuracy_unchecked(*_validate(delta, label), model_ties_option(model_ties))


_METRICS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "tau_star": lambda d, h: _tau_star_unchecked(d, h)[0],
    "diff": _diff_accuracy_unchecked,
}


def per_dimension_accuracy(
    dim_a: Tensor,
    dim_b: Tensor,
    label: Tensor,
    metric: Literal["tau_star", "diff"] = "tau_star",
) -> Tensor:
    """[D] preference accuracy of each of ``D`` per-dimension scores taken alone.

    ``dim_a`` and ``dim_b`` are [N, D] scores of the two sides of each pair, ``label`` is [N].
    For ``"tau_star"`` each dimension gets its own calibrated threshold.
    """
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {sorted(_METRICS)}, got {metric!r}")
    if dim_a.ndim != 2 or dim_a.shape != dim_b.shape:
        raise ValueError(
            f"dim_a and dim_b must be [N, D] of one shape, got {tuple(dim_a.shape)}, {tuple(dim_b.shape)}"
        )
    if label.ndim != 1 or label.shape[0] != dim_a.shape[0]:
        raise ValueError(
            f"label must be [N] with N = {dim_a.shape[0]} rows of dim_a, got {tuple(label.shape)}"
        )
    deltas = dim_a.to(torch.float64) - dim_b.to(torch.float64)
    fn = _METRICS[metric]
    out = []
    for d in range(deltas.shape[1]):
        try:
            delta, h = _validate(deltas[:, d], label)
        except ValueError as err:
            raise ValueError(f"dimension {d}: {err}") from err
        out.append(fn(delta, h))
    if not out:
        return torch.empty(0, dtype=torch.float64, device=dim_a.device)
    return torch.stack(out)


def resample_interval(
    statistic: Callable[[Tensor], Any],
    num_units: int,
    *,
    num_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap interval of ``statistic(index)`` over ``num_units`` units (pairs, or
    whole prompts) resampled with replacement: the one bootstrap every interval uses.

    Resample indices come from a ``torch.Generator`` seeded with ``seed``, so the interval is
    deterministic. Resamples where the statistic is NaN are skipped; if all are, the interval is
    ``(nan, nan)``.
    """
    if num_resamples < 1:
        raise ValueError(f"num_resamples must be >= 1, got {num_resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if num_units == 0:
        raise ValueError("cannot bootstrap an empty set")
    generator = torch.Generator().manual_seed(seed)
    # One [B, N] draw on the CPU generator keeps the stream identical whatever the device.
    index = torch.randint(0, num_units, (num_resamples, num_units), generator=generator)
    stats = torch.tensor([float(statistic(row)) for row in index], dtype=torch.float64)
    alpha = (1.0 - confidence) / 2.0
    low, high = torch.nanquantile(stats, torch.tensor([alpha, 1.0 - alpha], dtype=torch.float64))
    return float(low), float(high)


def bootstrap_interval(
    fn: Callable[[Tensor, Tensor], Tensor],
    delta: Tensor,
    label: Tensor,
    *,
    num_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap interval of ``fn(delta, label)`` over pairs resampled with replacement.

    ``fn`` returns a scalar tensor or float (e.g. :func:`tau_star_accuracy`, :func:`diff_accuracy`).
    For tau* the threshold is re-calibrated on every resample, as it is on the test set itself.
    Resamples where ``fn`` is NaN (e.g. diff with no decided pair) are skipped.
    """
    delta, label = _validate(delta, label)
    if delta.numel() == 0:
        raise ValueError("cannot bootstrap an empty set of pairs")
    # Use the validation-free kernels for the known metrics: validating 1000 resamples of data
    # that is already valid would dominate the run time.
    kernel: Callable[[Tensor, Tensor], Any] = fn
    if fn is tau_star_accuracy:
        kernel = _METRICS["tau_star"]
    elif fn is diff_accuracy:
        kernel = _METRICS["diff"]
    return resample_interval(
        lambda row: kernel(delta[row.to(delta.device)], label[row.to(delta.device)]),
        delta.numel(),
        num_resamples=num_resamples,
        confidence=confidence,
        seed=seed,
    )


def paired_difference(
    delta_a: Tensor,
    delta_b: Tensor,
    label: Tensor,
    metric: str,
    *,
    num_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """``metric`` (``tau_star`` or ``diff``) of reward A minus that of reward B on the same pairs,
    with its **paired** percentile-bootstrap interval: each resample draws one set of pairs and
    scores both rewards on it, so the interval is that of the difference itself (narrower than two
    marginal intervals when the rewards err on the same pairs). Keys ``difference``, ``low``,
    ``high``."""
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {sorted(_METRICS)}, got {metric!r}")
    if torch.as_tensor(delta_a).shape != torch.as_tensor(delta_b).shape:
        raise ValueError(
            "both rewards must score the same pairs: "
            f"{torch.as_tensor(delta_a).numel()} and {torch.as_tensor(delta_b).numel()}"
        )
    delta_a, label = _validate(delta_a, label)
    delta_b, _ = _validate(delta_b, label)
    kernel = _METRICS[metric]

    def difference(index: Tensor) -> Tensor:
        index = index.to(delta_a.device)
        return kernel(delta_a[index], label[index]) - kernel(delta_b[index], label[index])

    low, high = resample_interval(
        difference,
        delta_a.numel(),
        num_resamples=num_resamples,
        confidence=confidence,
        seed=seed,
    )
    whole = difference(torch.arange(delta_a.numel()))
    return {"difference": float(whole), "low": low, "high": high}


def preference_report(
    delta: Tensor, label: Tensor, *, num_resamples: int = 1000, seed: int = 0
) -> dict[str, float]:
    """tau* (with its epsilon) and diff accuracy, each with a 95% bootstrap interval, plus counts.

    Keys: ``tau_star``, ``tau_star_low``, ``tau_star_high``, ``epsilon``, ``diff``, ``diff_low``,
    ``diff_high``, ``num_pairs``, ``num_ties`` (pairs with a human tie label).
    """
    delta, label = _validate(delta, label)
    tau, epsilon = _tau_star_unchecked(delta, label)
    diff = _diff_accuracy_unchecked(delta, label)
    tau_low, tau_high = bootstrap_interval(
        tau_star_accuracy, delta, label, num_resamples=num_resamples, seed=seed
    )
    diff_low, diff_high = bootstrap_interval(
        diff_accuracy, delta, label, num_resamples=num_resamples, seed=seed
    )
    return {
        "tau_star": float(tau),
        "tau_star_low": tau_low,
        "tau_star_high": tau_high,
        "epsilon": float(epsilon),
        "diff": float(diff),
        "diff_low": diff_low,
        "diff_high": diff_high,
        "num_pairs": delta.numel(),
        "num_ties": int((label == 0).sum()),
    }


class _PairwisePreference(Metric):
    """Shared state for the pairwise metrics: every pair's ``delta`` and ``label``, concatenated.

    Both metrics need the whole set of pairs (tau* optimises a threshold over all of them), so
    the states are lists gathered with ``cat`` rather than running sums.
    """

    higher_is_better = True
    is_differentiable = False
    full_state_update = False
    plot_lower_bound = 0.0
    plot_upper_bound = 1.0

    delta: list[Tensor]
    label: list[Tensor]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("delta", default=[], dist_reduce_fx="cat")
        self.add_state("label", default=[], dist_reduce_fx="cat")

    def update(self, score_a: Tensor, score_b: Tensor, label: Tensor) -> None:
        """Add [N] pairs: the two sides' scores and the human label (+1 A, -1 B, 0 tie)."""
        if score_a.shape != score_b.shape:
            raise ValueError(
                f"score_a and score_b must share a shape, got {tuple(score_a.shape)}, {tuple(score_b.shape)}"
            )
        # Subtract in float64 so close float32 scores do not collapse into spurious exact ties.
        delta, label = _validate(score_a.to(torch.float64) - score_b.to(torch.float64), label)
        self.delta.append(delta)
        self.label.append(label)

    def _pairs(self) -> tuple[Tensor, Tensor]:
        if not self.delta:
            empty = torch.empty(0, device=self.device)
            return empty.to(torch.float64), empty.to(torch.int64)
        return dim_zero_cat(self.delta).to(torch.float64), dim_zero_cat(self.label).to(torch.int64)


class TauStarAccuracy(_PairwisePreference):
    """Tie-calibrated accuracy tau* (:func:`tau_star`) accumulated over batches of pairs.

    :meth:`compute` returns the accuracy and stores the chosen threshold in :attr:`epsilon`
    (``None`` before the first compute and after :meth:`reset`); :meth:`compute_with_threshold`
    returns both.
    """

    epsilon: Tensor | None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.epsilon = None

    def compute(self) -> Tensor:
        accuracy, self.epsilon = _tau_star_unchecked(*self._pairs())
        return accuracy

    def compute_with_threshold(self) -> tuple[Tensor, Tensor]:
        """``(accuracy, epsilon)`` of the accumulated pairs."""
        accuracy = self.compute()
        assert self.epsilon is not None  # set by compute (also when it returns a cached value)
        return accuracy, self.epsilon

    def reset(self) -> None:
        super().reset()
        self.epsilon = None


class DiffAccuracy(_PairwisePreference):
    """Accuracy over non-tie human labels (:func:`diff_accuracy`) accumulated over batches;
    ``model_ties`` (:class:`ModelTies`, default ``half``) is how an exact reward tie counts."""

    def __init__(self, model_ties: ModelTies | str = DEFAULT_MODEL_TIES, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_ties = model_ties_option(model_ties)

    def compute(self) -> Tensor:
        return _diff_accuracy_unchecked(*self._pairs(), self.model_ties)


def _grouped_mean(
    values: Tensor, groups: np.ndarray | Tensor, num_resamples: int, seed: int
) -> tuple[float, float, float]:
    """The mean of per-sample ``values`` with a 95% bootstrap interval that resamples whole
    prompts (``groups``): samples of one prompt are not independent. Each resample averages the
    drawn prompts' means, so a prompt counts as often as it is drawn, whatever its sample count."""
    if values.numel() == 0:
        raise ValueError("cannot bootstrap an empty set of samples")
    groups_t = torch.as_tensor(groups)
    if groups_t.shape != values.shape:
        raise ValueError(
            f"one group per sample: {groups_t.numel()} groups for {values.numel()} samples"
        )
    _, index = torch.unique(groups_t, return_inverse=True)
    num_groups = int(index.max()) + 1
    per_group = torch.zeros(num_groups, dtype=torch.float64).index_add_(0, index, values)
    per_group /= torch.bincount(index, minlength=num_groups).double()
    low, high = resample_interval(
        lambda row: per_group[row].mean(), num_groups, num_resamples=num_resamples, seed=seed
    )
    return float(values.mean()), low, high


def _paired(ours: np.ndarray | Tensor, base: np.ndarray | Tensor) -> tuple[Tensor, Tensor]:
    ours_t, base_t = torch.as_tensor(ours).double(), torch.as_tensor(base).double()
    if ours_t.shape != base_t.shape:
        raise ValueError(
            f"both generators must be judged on the same samples: {ours_t.numel()} and "
            f"{base_t.numel()}"
        )
    if torch.isnan(ours_t).any() or torch.isnan(base_t).any():
        raise ValueError("a sample's value is NaN")
    return ours_t, base_t


def win_rate(
    ours: np.ndarray | Tensor,
    base: np.ndarray | Tensor,
    groups: np.ndarray | Tensor,
    *,
    num_resamples: int = 1000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Wins (ties half) of ``ours`` over ``base`` sample by sample (the same prompt and noise),
    with a 95% bootstrap interval that resamples whole prompts (``groups``)."""
    ours_t, base_t = _paired(ours, base)
    wins = (ours_t > base_t).double() + 0.5 * (ours_t == base_t).double()
    return _grouped_mean(wins, groups, num_resamples, seed)


def mean_difference(
    ours: np.ndarray | Tensor,
    base: np.ndarray | Tensor,
    groups: np.ndarray | Tensor,
    *,
    num_resamples: int = 1000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean of ``ours - base`` sample by sample (the same prompt and noise), with its **paired**
    95% bootstrap interval over whole prompts (``groups``): the interval of the difference
    itself, not of two marginal means."""
    ours_t, base_t = _paired(ours, base)
    return _grouped_mean(ours_t - base_t, groups, num_resamples, seed)
