"""Metrics as torchmetrics ``Metric`` subclasses."""

from vrexp.metrics.checklist import PerQuestionAccuracy
from vrexp.metrics.preference import (
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

__all__ = [
    "NO_TIES_EPSILON",
    "DiffAccuracy",
    "PerQuestionAccuracy",
    "TauStarAccuracy",
    "bootstrap_interval",
    "diff_accuracy",
    "per_dimension_accuracy",
    "preference_report",
    "tau_star",
    "tau_star_accuracy",
]
