"""Schema of ``dpo/``: how DPO pairs are chosen among scored candidates, and the DPO strength."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from vrexp.configs.checks import require
from vrexp.configs.choices import Granularity, PairRule


@dataclass
class DPOConfig:
    name: str = MISSING
    rule: PairRule = PairRule.mpo
    granularity: Granularity = Granularity.dimension  # the scores MPO's dominance is taken over
    threshold: float = 0.0  # minimum total-score gap (in reward units)
    # MPO's tolerance: the winner may trail the loser by at most this on any dimension (0: exact
    # dominance, the paper's rule); in the units of the granularity's scores
    epsilon: float = 0.0
    num_pairs: int | None = 600  # pair budget: a seeded random subset when more pairs qualify
    beta: float = 500.0
    sft_weight: float = 0.0  # adds sft_weight x the winners' denoising loss
    seed: int = 0

    def __post_init__(self) -> None:
        require(
            "dpo",
            {
                "threshold": self.threshold >= 0,
                "epsilon": self.epsilon >= 0,
                "beta": self.beta > 0,
                "sft_weight": self.sft_weight >= 0,
                "num_pairs": self.num_pairs is None or self.num_pairs >= 1,
            },
            self,
        )
