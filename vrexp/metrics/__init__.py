"""Metrics: torchmetrics ``Metric`` classes with a functional core (tau*, diff, per-question
accuracy), the benchmarks' own tie protocols (:mod:`vrexp.metrics.protocols`), the one bootstrap
that gives every interval, and generator win rates."""

from vrexp.metrics.checklist import PerQuestionAccuracy
from vrexp.metrics.preference import (
    NO_TIES_EPSILON,
    DiffAccuracy,
    ModelTies,
    TauStarAccuracy,
    bootstrap_interval,
    diff_accuracy,
    mean_difference,
    paired_difference,
    per_dimension_accuracy,
    preference_report,
    resample_interval,
    tau_star,
    tau_star_accuracy,
    win_rate,
)
from vrexp.metrics.protocols import (
    PROTOCOLS,
    Protocol,
    ProtocolResult,
    protocol_interval,
    score_protocol,
    select_pickapic_threshold,
)

__all__ = [
    "NO_TIES_EPSILON",
    "PROTOCOLS",
    "DiffAccuracy",
    "ModelTies",
    "PerQuestionAccuracy",
    "Protocol",
    "ProtocolResult",
    "TauStarAccuracy",
    "bootstrap_interval",
    "diff_accuracy",
    "mean_difference",
    "paired_difference",
    "per_dimension_accuracy",
    "preference_report",
    "protocol_interval",
    "resample_interval",
    "score_protocol",
    "select_pickapic_threshold",
    "tau_star",
    "tau_star_accuracy",
    "win_rate",
]
