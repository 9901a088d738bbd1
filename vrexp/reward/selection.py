"""Subsets of a checklist chosen through the reward: the Fig. 5 question subsets, the pruned
"select" checklist that fit_weights writes, and the accuracy of a reward on labelled pairs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from vrexp.checklist import Checklist
from vrexp.configs.choices import QuestionSelection
from vrexp.configs.tasks import QuestionSubset
from vrexp.metrics import diff_accuracy, tau_star
from vrexp.reward.linear import LinearReward

log = logging.getLogger(__name__)


def question_subset(
    checklist: Checklist, spec: QuestionSubset, fit: Callable[[Checklist], LinearReward]
) -> Checklist:
    """The checklist restricted to ``spec.num_questions`` feature questions (Fig. 5), chosen at
    random or as the largest weights of ``fit(checklist)`` ("after weight masking")."""
    k = spec.num_questions
    features = [q for q in checklist.questions if q.kind != "presence"]
    if k is None or k >= len(features):
        return checklist
    if spec.selection == QuestionSelection.random:
        chosen = np.random.default_rng([spec.seed, k]).choice(len(features), k, replace=False)
    else:
        chosen = np.argsort(-fit(checklist).weights.numpy(), kind="stable")[:k]
    indicator = np.zeros(len(features))
    indicator[chosen] = 1.0
    return LinearReward(checklist, indicator).select_checklist(
        0.0, name=f"{checklist.name}-{spec.selection}{k}"
    )


def pair_accuracy(reward: LinearReward, answers_a: Any, answers_b: Any, label: Any) -> dict:
    """tau* (with its epsilon) and diff of ``reward`` on pairs with these answers and labels."""
    delta = reward.score(answers_a) - reward.score(answers_b)
    label = torch.as_tensor(np.asarray(label), dtype=torch.float64)
    tau, eps = tau_star(delta, label)
    return {
        "tau_star": float(tau),
        "epsilon": float(eps),
        "diff": float(diff_accuracy(delta, label)),
    }


def write_select_checklist(reward: LinearReward, path: Path, threshold: float) -> Checklist | None:
    """The questions weighted above ``threshold`` as a ``dimensions/`` YAML at ``path``; None (and
    no file) when no weight exceeds it, as a fit on uninformative answers can end."""
    if not reward.questions_above(threshold):
        path.unlink(missing_ok=True)
        log.warning(
            "no weight of %r exceeds %s: %s not written", reward.checklist.name, threshold, path
        )
        return None
    select = reward.select_checklist(threshold, name=f"{reward.checklist.name}_select")
    header = (
        f"# {select.name}: questions of {reward.checklist.name} with weight > {threshold}, written "
        "by fit_weights.\n# Copy into conf/dimensions/ to use it as dimensions="
        f"{select.name}.\n"
    )
    body = {"defaults": ["base_checklist", "_self_"], **select.to_config()}
    path.write_text(header + yaml.safe_dump(body, sort_keys=False, width=120))
    return select
