"""Alignment supervision beyond the checklist: counterfactual prompts and direct colour questions.

Alignment is the one factor that depends on the prompt as well as the pixels, and a checklist model
that only ever sees each image with its own prompt can score well on every other question while
never learning to compare the two (its alignment answers stay at the prior). Asking about the same
image under a prompt that differs in count or colour, labelled exactly by the oracle's view of the
pixels (:func:`~vrexp.data.synthworld.oracle.alignment_level`), is the image-text-matching
negative used to train real VLMs, with SynthWorld's exact labels. Only prompts of an allowed set
are used (the training part's), so no held-out prompt text reaches training.

Counterfactual prompts teach the count but, in the tiny model's budget, seldom the colour: the
colour word sits in a long prompt and the model learns to answer from the count alone. A direct
question about the colour the oracle saw (:func:`colour_questions`), the kind of attribute
question a real VLM meets in its pretraining, names the word alone and binds it to the pixels.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import numpy as np

from vrexp.data.synthworld.grammar import COUNT_WORDS, OBJECT_COLORS, parse_prompt
from vrexp.data.synthworld.oracle import alignment_level


def prompt_variants(
    prompt: str, count: int, color: str | None, allowed: Iterable[str]
) -> dict[int, list[str]]:
    """Texts of ``prompt`` with its count and/or colour changed (and itself), grouped by the
    alignment level media showing ``count`` objects of ``color`` has against each; only texts in
    ``allowed``."""
    allowed = set(allowed)
    spec = parse_prompt(prompt)
    variants: dict[int, list[str]] = {}
    for n in range(1, len(COUNT_WORDS) + 1):
        for name in OBJECT_COLORS:
            other = replace(spec, count=n, color=name)
            if other.text in allowed:
                variants.setdefault(alignment_level(count, color, other), []).append(other.text)
    return variants


COLOUR_QUESTION = "Are the objects in the {media} {colour}?"


def colour_questions(seen: str, rng: np.random.Generator, media: str) -> list[tuple[str, float]]:
    """Two direct questions about ``media`` ("image" or "video") whose objects the oracle saw in
    colour ``seen``: that colour (yes) and another of the grammar's, drawn uniformly (no)."""
    others = [name for name in OBJECT_COLORS if name != seen]
    other = others[int(rng.integers(len(others)))]
    return [
        (COLOUR_QUESTION.format(media=media, colour=seen), 1.0),
        (COLOUR_QUESTION.format(media=media, colour=other), 0.0),
    ]


def draw_variant(variants: dict[int, list[str]], rng: np.random.Generator) -> tuple[str, int]:
    """A level uniformly among those present, then one of its texts: balanced labels however
    rare a match is among the variants."""
    levels = sorted(variants)
    level = levels[int(rng.integers(len(levels)))]
    texts = variants[level]
    return texts[int(rng.integers(len(texts)))], level
