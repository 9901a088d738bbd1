"""Per-question (and per-dimension) accuracy of checklist answers.

The counts are metric states summed across ranks (``dist_reduce_fx="sum"``), so under DDP each
rank scores its share of the items and :meth:`PerQuestionAccuracy.compute` gives every rank the
accuracy over all of them. Inputs may come on any device and in any dtype: they are moved to the
metric's own device (where its states live) before counting.
"""

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
        device = self.correct.device
        p_yes, target = p_yes.to(device).float(), target.to(device).float()
        question = question.to(device=device, dtype=torch.long)
        hits = ((p_yes > 0.5) == (target > 0.5)).to(self.correct.dtype)
        self.correct += torch.zeros_like(self.correct).index_add_(0, question, hits)
        self.total += torch.zeros_like(self.total).index_add_(0, question, torch.ones_like(hits))

    def compute(self) -> torch.Tensor:
        return self.correct / self.total.where(self.total > 0, torch.nan)

    def per_group(self, groups: torch.Tensor, num_groups: int) -> torch.Tensor:
        """[G] mean over the seen questions of each group (``groups`` is [Q] group indices)."""
        acc = self.compute().float()
        groups = groups.to(device=acc.device, dtype=torch.long)
        seen = ~torch.isnan(acc)
        sums = acc.new_zeros(num_groups).index_add_(0, groups[seen], acc[seen])
        counts = acc.new_zeros(num_groups).index_add_(
            0, groups[seen], acc.new_ones(int(seen.sum()))
        )
        return sums / counts.where(counts > 0, torch.nan)
