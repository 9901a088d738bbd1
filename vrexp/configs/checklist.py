"""Schema of ``dimensions/``: a checklist hierarchy (dimensions > sub-dimensions > questions)."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

from vrexp.configs.choices import Media


@dataclass
class QuestionSpec:
    text: str = MISSING
    id: int | None = None
    at_least: str | None = None  # option name of the boundary; inferred from order if omitted
    external: bool = False  # answered outside the checklist VLM (the image alignment item)


@dataclass
class PresenceSpec:
    text: str = MISSING
    id: int | None = None


@dataclass
class SubDimensionSpec:
    name: str = MISSING
    options: list[str] = MISSING  # best first
    questions: list[QuestionSpec] = MISSING
    key: str | None = None  # SynthWorld factor measured by the oracle
    presence: PresenceSpec | None = None
    absent: str | None = None  # the option that the presence question masks


@dataclass
class DimensionSpec:
    name: str = MISSING
    sub_dimensions: list[SubDimensionSpec] = MISSING


@dataclass
class ChecklistConfig:
    name: str = MISSING
    media: Media = MISSING
    drop: list[str] = field(default_factory=list)  # dimensions to leave out (ablations)
    hierarchy: list[DimensionSpec] = MISSING
