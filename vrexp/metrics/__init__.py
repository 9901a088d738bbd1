"""Metrics as torchmetrics ``Metric`` subclasses."""

from vrexp.metrics.checklist import PerQuestionAccuracy

__all__ = ["PerQuestionAccuracy"]
