"""Metrics: torchmetrics ``Metric`` classes with a functional core (tau*, diff, per-question
accuracy), the one bootstrap that gives every interval, and generator win rates."""

from vrexp.metrics.checklist import PerQuestionAccuracy
from vrexp.metrics.preference import (
    NO_TIES_EPSILON,
    DiffAccuracy,
    TauStarAccuracy,
    bootstrap_interval,
    diff_accuracy,
    per_dimension_accuracy,
    preference_report,
    resample_interval,
    tau_star,
    tau_star_accuracy,
    win_rate,
)

__all__ = [
    "NO_TIES_EPSILON",
    "DiffAccuracy",
    "PerQuestionAccuracy",
    "TauStarAccuracy",
    "bootstrap_interval",
    "diff_accuracy",
    "per_dimension_accuracy",
    "preference_report",
    "resample_interval",
    "tau_star",
    "tau_star_accuracy",
    "win_rate",
]
