"""Safe substitution of a text prompt into checklist questions.

A question may contain the placeholder ``[[prompt]]``. The prompt is user data, so it is cleaned
before it goes into a question: whitespace (newlines included) is collapsed so a prompt cannot start
a new chat turn, control characters are dropped, and straight double quotes become single quotes so
the prompt cannot close the quotes that surround it in the official questions. Substitution is a
single pass over the *question*, so braces or a literal ``[[prompt]]`` inside the prompt are inert.
"""

from __future__ import annotations

import math
import re
import unicodedata

PLACEHOLDER = "[[prompt]]"

_WHITESPACE = re.compile(r"\s+")


class PromptError(ValueError):
    """A prompt that cannot be put into a question (not a string, NaN, empty)."""


def sanitize_prompt(prompt: object, *, item: object = None) -> str:
    """Return ``prompt`` cleaned for substitution; ``item`` names the sample in errors."""
    where = f" for item {item!r}" if item is not None else ""
    if isinstance(prompt, float) and math.isnan(prompt):
        raise PromptError(f"prompt{where} is NaN; every item needs a text prompt")
    if not isinstance(prompt, str):
        raise PromptError(
            f"prompt{where} must be a string, got {type(prompt).__name__}: {prompt!r}"
        )
    cleaned = "".join(
        ch if ch.isspace() or unicodedata.category(ch)[0] != "C" else " " for ch in prompt
    )
    cleaned = _WHITESPACE.sub(" ", cleaned).strip().replace('"', "'")
    if not cleaned:
        raise PromptError(f"prompt{where} is empty after cleaning: {prompt!r}")
    return cleaned


def has_placeholder(question: str) -> bool:
    return PLACEHOLDER in question


def fill_prompt(question: str, prompt: object | None, *, item: object = None) -> str:
    """Put ``prompt`` into ``question`` in place of every ``[[prompt]]``.

    A question without the placeholder is returned unchanged (the prompt is still validated when
    given, so a malformed prompt never passes silently).
    """
    if prompt is None:
        if has_placeholder(question):
            raise PromptError(f"question {question!r} needs a prompt (it contains {PLACEHOLDER})")
        return question
    cleaned = sanitize_prompt(prompt, item=item)
    return cleaned.join(question.split(PLACEHOLDER))
