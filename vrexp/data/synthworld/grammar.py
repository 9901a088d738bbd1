"""SynthWorld prompt grammar: what a prompt may ask for, how it is written and how it is parsed.

A prompt names a count, an object color, a shape and a background, and optionally a smiley face:
``"two red circles on a sky background, with a smiley face"``. The oracle parses prompts back with
:func:`parse_prompt`, so it can judge any media (rendered or generated) against its prompt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

COUNT_WORDS = ("one", "two", "three", "four")
# Object colors sit at hues >= 60 degrees apart from each other and from the reserved face (yellow)
# and hazard (magenta) hues, so the oracle can tell them apart under noise and blur.
OBJECT_COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.86, 0.12, 0.10),
    "green": (0.12, 0.70, 0.16),
    "blue": (0.12, 0.22, 0.88),
    "cyan": (0.08, 0.72, 0.78),
}
FACE_COLOR = (0.96, 0.84, 0.10)
HAZARD_COLOR = (0.86, 0.08, 0.78)
# Pastel backgrounds with (nearly) equal luminance, so brightness is measurable from the pixels.
BACKGROUNDS: dict[str, tuple[float, float, float]] = {
    "gray": (0.82, 0.82, 0.82),
    "sand": (0.90, 0.82, 0.70),
    "sky": (0.74, 0.83, 0.93),
    "mint": (0.74, 0.88, 0.78),
}
SHAPES = ("circle", "square", "diamond")

_PROMPT = re.compile(
    r"^(?P<count>one|two|three|four) (?P<color>[a-z]+) (?P<shape>[a-z]+?)s? "
    r"on an? (?P<background>[a-z]+) background(?P<face>, with a smiley face)?$"
)


class GrammarError(ValueError):
    """A prompt outside the SynthWorld grammar."""


@dataclass(frozen=True)
class PromptSpec:
    count: int
    color: str
    shape: str
    background: str
    face: bool = False

    @property
    def text(self) -> str:
        noun = self.shape if self.count == 1 else f"{self.shape}s"
        article = "an" if self.background[0] in "aeiou" else "a"
        face = ", with a smiley face" if self.face else ""
        return (
            f"{COUNT_WORDS[self.count - 1]} {self.color} {noun} on {article} "
            f"{self.background} background{face}"
        )


def sample_spec(rng: np.random.Generator, max_count: int, face: bool) -> PromptSpec:
    return PromptSpec(
        count=int(rng.integers(1, max_count + 1)),
        color=str(rng.choice(list(OBJECT_COLORS))),
        shape=str(rng.choice(SHAPES)),
        background=str(rng.choice(list(BACKGROUNDS))),
        face=face,
    )


def parse_prompt(prompt: str) -> PromptSpec:
    """Invert :attr:`PromptSpec.text`; raises :class:`GrammarError` naming the prompt."""
    match = _PROMPT.match(prompt.strip()) if isinstance(prompt, str) else None
    if match is None:
        raise GrammarError(f"prompt {prompt!r} is not in the SynthWorld grammar")
    parts = match.groupdict()
    if parts["color"] not in OBJECT_COLORS:
        raise GrammarError(f"prompt {prompt!r}: unknown color {parts['color']!r}")
    if parts["shape"] not in SHAPES:
        raise GrammarError(f"prompt {prompt!r}: unknown shape {parts['shape']!r}")
    if parts["background"] not in BACKGROUNDS:
        raise GrammarError(f"prompt {prompt!r}: unknown background {parts['background']!r}")
    return PromptSpec(
        count=COUNT_WORDS.index(parts["count"]) + 1,
        color=parts["color"],
        shape=parts["shape"],
        background=parts["background"],
        face=parts["face"] is not None,
    )
