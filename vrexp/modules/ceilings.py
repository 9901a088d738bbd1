"""Known-truth ceilings of an evaluation on SynthWorld, where the truth is known.

On the same test pairs as the reward under evaluation:

- ``ceiling: hidden utility`` scores each pair by the world's hidden utility itself: what any
  reward can reach under the judges' noise (its tau* is below 1 only through that noise and the
  ties);
- ``ceiling: oracle answers`` scores it by the oracle's checklist answers, weighted like the
  reward (same checklist, encoding, solver and training pairs): what the linear checklist form
  reaches with a perfect checklist model.

The gap from the reward to the second is what the checklist model loses; from the second to the
first, what the linear form loses. :func:`oracle_gap_by_dimension` splits the first gap by
dimension: the checklist model's answers with one dimension's questions answered by the oracle
instead, weighted afresh on the same pairs, say how much of the gap that dimension's errors cost.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vrexp.checklist import Checklist
from vrexp.configs.choices import Encoding, Solver
from vrexp.configs.tasks import FitWeightsTaskConfig, SGDSettings
from vrexp.data.pairs import PreferencePairs
from vrexp.data.synthworld.split import read_items
from vrexp.metrics import tau_star
from vrexp.modules.weights import fit_reward

HIDDEN_UTILITY = "ceiling: hidden utility"
ORACLE_ANSWERS = "ceiling: oracle answers"


@dataclass
class Ceilings:
    """The ceilings' score differences A - B on the test pairs, and the oracle-answer reward's
    per-dimension sub-scores of the A and B items ([P, D] each)."""

    deltas: dict[str, torch.Tensor]
    oracle_dimensions: tuple[torch.Tensor, torch.Tensor]


def fit_settings(info: Mapping[str, Any], annotations: str) -> FitWeightsTaskConfig:
    """The weighting settings a reward was fitted with, from its ``fit_info.json`` (defaults for
    what an older folder does not record)."""
    defaults = FitWeightsTaskConfig(annotations=annotations)
    sgd = info.get("sgd")
    return FitWeightsTaskConfig(
        annotations=annotations,
        encoding=Encoding(info.get("encoding", defaults.encoding)),
        solver=Solver(info.get("solver", defaults.solver)),
        l2=info.get("l2", defaults.l2),
        sgd=SGDSettings(**sgd) if isinstance(sgd, dict) else defaults.sgd,
    )


PairAnswers = Callable[[PreferencePairs], tuple[np.ndarray, np.ndarray]]


class OracleAnswers:
    """The oracle's answers to ``checklist``'s questions for the A and B items of pairs of the
    SynthWorld split ``split_dir``, and each item's hidden utility."""

    def __init__(self, split_dir: str | Path, checklist: Checklist) -> None:
        items = read_items(split_dir)
        split_checklist = Checklist.from_yaml(Path(split_dir) / "checklist.yaml")
        self._row = {int(i): r for r, i in enumerate(items.column("item_id").to_pylist())}
        self.utility = items.column("utility").to_numpy()
        oracle = np.asarray(items.column("oracle_answers").to_pylist(), dtype=np.float64)
        self.answers = oracle[:, [split_checklist.column(q.id) for q in checklist.questions]]

    def rows(self, ids: np.ndarray) -> np.ndarray:
        return np.asarray([self._row[int(i)] for i in ids], dtype=np.int64)

    def __call__(self, pairs: PreferencePairs) -> tuple[np.ndarray, np.ndarray]:
        return self.answers[self.rows(pairs.item_a)], self.answers[self.rows(pairs.item_b)]


def known_truth_ceilings(
    oracle: OracleAnswers,
    checklist: Checklist,
    train: PreferencePairs,
    test: PreferencePairs,
    settings: FitWeightsTaskConfig,
    *,
    seed: int = 0,
) -> Ceilings:
    """The two ceilings of ``test`` from the split's ``oracle`` (answers to ``checklist``'s
    questions); the oracle answers are weighted on ``train``, the reward's own training pairs."""
    reward = fit_reward(checklist, oracle(train), train.label, settings, seed=seed)
    test_a, test_b = oracle(test)
    utility = oracle.utility
    return Ceilings(
        deltas={
            HIDDEN_UTILITY: torch.as_tensor(
                utility[oracle.rows(test.item_a)] - utility[oracle.rows(test.item_b)],
                dtype=torch.float64,
            ),
            ORACLE_ANSWERS: (reward.score(test_a) - reward.score(test_b)).double(),
        },
        oracle_dimensions=(reward.dimension_scores(test_a), reward.dimension_scores(test_b)),
    )


def oracle_gap_by_dimension(
    oracle: OracleAnswers,
    checklist: Checklist,
    train: PreferencePairs,
    test: PreferencePairs,
    model_answers: PairAnswers,
    settings: FitWeightsTaskConfig,
    *,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One row per dimension of ``checklist``: the test tau* of the checklist model's answers
    (``model_answers`` of pairs) with that dimension's questions answered by the oracle, weighted
    afresh on ``train`` like the reward, and ``recovered``, its gain over the model's answers alone
    weighted the same way; ``share`` is that gain over the whole gap to the oracle answers.

    The shares need not sum to 1: the dimensions' errors interact through the weighting."""
    label = torch.as_tensor(test.label, dtype=torch.float64)
    model = {"train": model_answers(train), "test": model_answers(test)}
    truth = {"train": oracle(train), "test": oracle(test)}
    dimension = checklist.question_dimension()

    def accuracy(columns: np.ndarray) -> float:
        def mixed(part: str) -> tuple[np.ndarray, np.ndarray]:
            out = []
            for answers, exact in zip(model[part], truth[part], strict=True):
                answers = np.array(answers, dtype=np.float64)
                answers[:, columns] = exact[:, columns]
                out.append(answers)
            return out[0], out[1]

        reward = fit_reward(checklist, mixed("train"), train.label, settings, seed=seed)
        test_a, test_b = mixed("test")
        return float(tau_star((reward.score(test_a) - reward.score(test_b)).double(), label)[0])

    alone = accuracy(np.zeros_like(dimension, dtype=bool))
    gap = accuracy(np.ones_like(dimension, dtype=bool)) - alone
    rows = []
    for index, name in enumerate(checklist.dimension_names):
        value = accuracy(dimension == index)
        rows.append(
            {
                "dimension": name,
                "questions": int((dimension == index).sum()),
                "tau_star": value,
                "recovered": value - alone,
                "share": (value - alone) / gap if gap > 0 else float("nan"),
            }
        )
    return rows
