"""Generator preference optimisation primitives: DPO pair selection and the Diffusion-DPO loss."""

from vrexp.preference.dpo import diffusion_dpo_loss
from vrexp.preference.selection import PairRule, dominance_statistics, select_pairs

__all__ = ["PairRule", "diffusion_dpo_loss", "dominance_statistics", "select_pairs"]
