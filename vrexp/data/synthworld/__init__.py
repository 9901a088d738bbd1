"""SynthWorld: a procedural text-to-image/video world with a known truth (docs/synthworld.md)."""

from vrexp.data.synthworld.grammar import GrammarError, PromptSpec, parse_prompt
from vrexp.data.synthworld.oracle import measure
from vrexp.data.synthworld.preference import (
    FactorJudge,
    Judge,
    Verdict,
    synthworld_judge,
    synthworld_verdict,
)
from vrexp.data.synthworld.render import render
from vrexp.data.synthworld.split import (
    SplitError,
    ensure_split,
    make_split,
    preference_split,
    read_items,
    read_pairs,
)
from vrexp.data.synthworld.world import FACTORS, Plan, sample_plan

__all__ = [
    "FACTORS",
    "FactorJudge",
    "GrammarError",
    "Judge",
    "Plan",
    "PromptSpec",
    "SplitError",
    "Verdict",
    "ensure_split",
    "make_split",
    "measure",
    "parse_prompt",
    "preference_split",
    "read_items",
    "read_pairs",
    "render",
    "sample_plan",
    "synthworld_judge",
    "synthworld_verdict",
]
