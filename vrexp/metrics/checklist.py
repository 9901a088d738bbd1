"""Per-question (and per-dimension) accuracy of checklist answers."""

from __future__ import annotations

import torch
from torchmetrics import Metric


class PerQuestionAccuracy(Metric):
    """Accuracy of hard answers (P(yes) > 0.5) for each of ``num_questions`` questions.

    ``update(p_yes, target, question)`` takes flat [M] tensors: predictions, 0/1 targets and the
    question index of each. :meth:`compute` returns [Q] accuracies (NaN for unseen questions);
    :meth:`per_group` averages them over groups such as dimensions.
    """

    full_state_update = False

    def __init__(self, num_questions: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_questions = num_questions
        self.add_state("correct", default=torch.zeros(num_questions), dist_reduce_fx="sum")
        self.add_state("total", default=torch.zeros(num_questions), dist_reduce_fx="sum")

    def update(self, p_yes: torch.Tensor, target: torch.Tensor, question: torch.Tensor) -> None:
        if not (p_yes.shape == target.shape == question.shape):
            raise ValueError(
                f"p_yes, target and question must share a shape, got {p_yes.shape}, {target.shape}, {question.shape}"
            )
        hits = ((p_yes > 0.5) == (target > 0.5)).float()
        self.correct += torch.zeros_like(self.correct).index_add_(0, question, hits)
        self.total += torch.zeros_like(self.total).index_add_(0, question, torch.ones_like(hits))

    def compute(self) -> torch.Tensor:
        return self.correct / self.total.where(self.total > 0, torch.nan)

    def per_group(self, groups: torch.Tensor, num_groups: int) -> torch.Tensor:
        """[G] mean over the seen questions of each group (``groups`` is [Q] group indices)."""
        acc = self.compute()
        seen = ~torch.isnan(acc)
        sums = torch.zeros(num_groups).index_add_(0, groups[seen], acc[seen].float())
        counts = torch.zeros(num_groups).index_add_(0, groups[seen], torch.ones(int(seen.sum())))
        return sums / counts.where(counts > 0, torch.nan)
