"""Known-truth ceilings of an evaluation on SynthWorld, where the truth is known.

On the same test pairs as the reward under evaluation:

- ``ceiling: hidden utility`` scores each pair by the world's hidden utility itself: what any
  reward can reach under the judges' noise (its tau* is below 1 only through that noise and the
  ties);
- ``ceiling: oracle answers`` scores it by the oracle's checklist answers, weighted like the
  reward (same checklist, encoding, solver and training pairs): what the linear checklist form
  reaches with a perfect checklist model.

The gap from the reward to the second is what the checklist model loses; from the second to the
first, what the linear form loses.
"""

from __future__ import annotations

from collections.abc import Mapping
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


def known_truth_ceilings(
    split_dir: str | Path,
    checklist: Checklist,
    train: PreferencePairs,
    test: PreferencePairs,
    settings: FitWeightsTaskConfig,
    *,
    seed: int = 0,
) -> Ceilings:
    """The two ceilings of ``test`` on the SynthWorld split ``split_dir``; the oracle answers are
    weighted on ``train``, the reward's own training pairs, over ``checklist``'s questions."""
    items = read_items(split_dir)
    split_checklist = Checklist.from_yaml(Path(split_dir) / "checklist.yaml")
    row = {int(i): r for r, i in enumerate(items.column("item_id").to_pylist())}
    utility = items.column("utility").to_numpy()
    oracle = np.asarray(items.column("oracle_answers").to_pylist(), dtype=np.float64)
    oracle = oracle[:, [split_checklist.column(q.id) for q in checklist.questions]]

    def rows(ids: np.ndarray) -> np.ndarray:
        return np.asarray([row[int(i)] for i in ids], dtype=np.int64)

    def answers(pairs: PreferencePairs) -> tuple[np.ndarray, np.ndarray]:
        return oracle[rows(pairs.item_a)], oracle[rows(pairs.item_b)]

    reward = fit_reward(checklist, answers(train), train.label, settings, seed=seed)
    test_a, test_b = answers(test)
    return Ceilings(
        deltas={
            HIDDEN_UTILITY: torch.as_tensor(
                utility[rows(test.item_a)] - utility[rows(test.item_b)], dtype=torch.float64
            ),
            ORACLE_ANSWERS: (reward.score(test_a) - reward.score(test_b)).double(),
        },
        oracle_dimensions=(reward.dimension_scores(test_a), reward.dimension_scores(test_b)),
    )
