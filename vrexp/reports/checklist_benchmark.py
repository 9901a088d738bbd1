"""A checklist model's answers against human checklist labels (VisionRewardDB's held-out rows):
per-question and per-dimension accuracy with bootstrap intervals over items, in the record form
of :func:`vrexp.reports.benchmark.write_benchmark`.

This is the paper's judgment-accuracy comparison (its Table 10) for any reward: a trained
VisionReward folder or the released weighting answered by a zero-shot backbone. Accuracy is that
of hard answers (P(yes) > 0.5) on the answers a label applies to; a dimension's accuracy is the
mean of its questions' (as ``train_checklist`` reports it), the headline the mean over questions.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from vrexp.checklist import Checklist
from vrexp.metrics import PerQuestionAccuracy
from vrexp.metrics.preference import resample_interval

CONFIDENCE = 0.95
HEADLINE = "checklist_accuracy"


def _hits(p_yes: np.ndarray, labels: np.ndarray, applicable: np.ndarray) -> np.ndarray:
    """[N, Q] 1.0 / 0.0 where a label applies and an answer exists, NaN elsewhere."""
    answered = applicable & ~np.isnan(p_yes)
    return np.where(answered, ((p_yes > 0.5) == (labels > 0.5)).astype(np.float64), np.nan)


def _mean(values: np.ndarray, axis: int = 0) -> np.ndarray:
    with np.errstate(invalid="ignore"):  # a question no resampled item answers is NaN
        counts = (~np.isnan(values)).sum(axis)
        return np.where(counts > 0, np.nansum(values, axis) / np.maximum(counts, 1), np.nan)


def checklist_accuracy_record(
    p_yes: np.ndarray,
    labels: np.ndarray,
    applicable: np.ndarray,
    checklist: Checklist,
    *,
    benchmark: str,
    split: str,
    revision: str | None,
    num_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """The record of answers ``p_yes`` [N, Q] (NaN: a question the reward does not ask) against
    ``labels`` / ``applicable`` [N, Q], both in ``checklist``'s question order."""
    if not (p_yes.shape == labels.shape == applicable.shape) or p_yes.ndim != 2:
        raise ValueError(
            f"p_yes, labels and applicable must be [items, questions] arrays of one shape, got "
            f"{p_yes.shape}, {labels.shape}, {applicable.shape}"
        )
    questions, names = checklist.questions, checklist.dimension_names
    groups = torch.tensor([names.index(q.dimension) for q in questions])
    hits = _hits(p_yes, labels, applicable.astype(bool))
    metric = PerQuestionAccuracy(len(questions))
    item, column = np.nonzero(~np.isnan(hits))
    metric.update(
        torch.as_tensor(p_yes[item, column]),
        torch.as_tensor(labels[item, column], dtype=torch.float64),
        torch.as_tensor(column),
    )
    per_question = metric.compute().double().numpy()
    per_dimension = metric.per_group(groups, len(names)).double().numpy()

    def mean_over_questions(index: torch.Tensor) -> float:
        return float(np.nanmean(_mean(hits[index.numpy()]))) if len(index) else float("nan")

    def dimension_of(d: int):
        columns = (groups == d).numpy()
        return lambda index: float(np.nanmean(_mean(hits[index.numpy()][:, columns])))

    def interval(statistic) -> list[float | None]:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN resample is skipped
            if not np.isfinite(statistic(torch.arange(len(hits)))):
                return [None, None]
            low, high = resample_interval(
                statistic, len(hits), num_resamples=num_resamples, seed=seed
            )
        return [_finite(low), _finite(high)]

    headline = float(np.nanmean(per_question)) if np.isfinite(per_question).any() else None
    answers = int((~np.isnan(hits)).sum())
    dimensions = []
    for d, name in enumerate(names):
        low, high = interval(dimension_of(d))
        dimensions.append(
            {
                "dimension": name,
                "accuracy": _finite(per_dimension[d]),
                "low": low,
                "high": high,
                "questions": int(np.isfinite(per_question[(groups == d).numpy()]).sum()),
                "answers": int((~np.isnan(hits[:, (groups == d).numpy()])).sum()),
            }
        )
    return {
        "benchmark": benchmark,
        "split": split,
        "revision": revision,
        "label": None,
        "protocols": [HEADLINE],
        "metrics": {HEADLINE: headline},
        "intervals": {HEADLINE: interval(mean_over_questions)},
        "interval": {
            "confidence": CONFIDENCE,
            "num_resamples": num_resamples,
            "seed": seed,
            "unit": {HEADLINE: "item"},
        },
        "counts": {
            "items": len(hits),
            "answers": answers,
            "questions": int(np.isfinite(per_question).sum()),
            "skipped": 0,
        },
        "details": {
            HEADLINE: {
                "params": {"threshold": 0.5, "aggregation": "mean over questions"},
                "counts": {"answers": answers},
            }
        },
        "per_dimension": dimensions,
        "per_question": [
            {
                "id": q.id,
                "dimension": q.dimension,
                "question": q.text,
                "accuracy": _finite(per_question[c]),
                "answers": int((~np.isnan(hits[:, c])).sum()),
            }
            for c, q in enumerate(questions)
        ],
        "skipped_rows": [],
    }


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None
