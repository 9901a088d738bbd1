"""SynthWorld factors and plans: which graded qualities a rendered item has, and how they are drawn.

A *factor* is a world quality with ordered levels, best first (level 0). Every sub-dimension of a
SynthWorld checklist names its factor with ``key``; its options are the factor's levels. A *plan*
fixes the prompt and one level per factor for one item. Levels are drawn "mostly neutral, few
extremes", as in the paper's label statistics (paper App. 6.2, Fig. 7).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from vrexp.data.synthworld.grammar import PromptSpec, sample_spec

ABSENT = -1


@dataclass(frozen=True)
class Factor:
    key: str
    num_levels: int
    maskable: bool = False  # may be absent (level -1), gated by a presence question


IMAGE_FACTORS: tuple[Factor, ...] = (
    Factor("alignment", 3),
    Factor("symmetry", 3),
    Factor("prominence", 3),
    Factor("clarity", 4),
    Factor("brightness", 3),
    Factor("grain", 3),
    Factor("face", 3, maskable=True),
    Factor("hazard", 3),
)
VIDEO_FACTORS: tuple[Factor, ...] = (
    Factor("alignment", 3),
    Factor("prominence", 3),
    Factor("clarity", 3),
    Factor("brightness", 3),
    Factor("grain", 3),
    Factor("face", 3, maskable=True),
    Factor("hazard", 3),
    Factor("flicker", 3),
    Factor("motion", 3),
    Factor("continuity", 3),
    Factor("preservation", 3),
)
FACTORS: dict[str, tuple[Factor, ...]] = {"image": IMAGE_FACTORS, "video": VIDEO_FACTORS}
MAX_COUNT = {"image": 4, "video": 3}


@dataclass(frozen=True)
class Plan:
    """What to render for one item: the requested prompt and a level per factor."""

    spec: PromptSpec
    levels: Mapping[str, int]

    @property
    def prompt(self) -> str:
        return self.spec.text


def level_probabilities(num_levels: int, concentration: float) -> np.ndarray:
    """Discretised bell over levels centred on the neutral middle option."""
    k = np.arange(num_levels, dtype=np.float64)
    logits = -concentration * (k - (num_levels - 1) / 2) ** 2
    p = np.exp(logits - logits.max())
    return p / p.sum()


def sample_levels(
    rng: np.random.Generator, media: str, face: bool, concentration: float
) -> dict[str, int]:
    """One level per factor; the face factor is absent unless the prompt asks for a face."""
    levels: dict[str, int] = {}
    for factor in FACTORS[media]:
        if factor.maskable and not face:
            levels[factor.key] = ABSENT
            continue
        p = level_probabilities(factor.num_levels, concentration)
        levels[factor.key] = int(rng.choice(factor.num_levels, p=p))
    return levels


def sample_plan(
    rng: np.random.Generator, media: str, face_rate: float, concentration: float
) -> Plan:
    """A prompt and its levels from one generator (tests and quick looks use this)."""
    spec = sample_spec(rng, MAX_COUNT[media], bool(rng.random() < face_rate))
    return Plan(spec=spec, levels=sample_levels(rng, media, spec.face, concentration))


def quality(levels: Mapping[str, int], media: str) -> dict[str, float]:
    """Per-factor quality in [0, 1] (1 = best level); an absent face counts as neutral 0.5."""
    out = {}
    for factor in FACTORS[media]:
        level = levels[factor.key]
        out[factor.key] = 0.5 if level == ABSENT else 1.0 - level / (factor.num_levels - 1)
    return out
