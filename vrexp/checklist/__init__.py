"""Checklist hierarchy: data model, YAML loading, answer/level conversions, prompt filling."""

from vrexp.checklist.hierarchy import (
    ABSENT,
    Checklist,
    ChecklistError,
    Dimension,
    Question,
    SubDimension,
)
from vrexp.checklist.prompting import PLACEHOLDER, PromptError, fill_prompt, sanitize_prompt

__all__ = [
    "ABSENT",
    "PLACEHOLDER",
    "Checklist",
    "ChecklistError",
    "Dimension",
    "PromptError",
    "Question",
    "SubDimension",
    "fill_prompt",
    "sanitize_prompt",
]
