"""The checklist hierarchy: Dimension > SubDimension (ordered options) > threshold questions.

A sub-dimension has options ordered best first. Each threshold question asks "is it at least option
``o``?", so it answers yes exactly when the item's level (an option index, 0 = best) is ``<= o``.
A sub-dimension may have a presence question; when the element is absent its level is ``-1`` and
its threshold questions do not apply (they are masked). Questions carry a stable ``id``; the flat
question order of a checklist is ascending ``id``, which for the official VisionReward lists is the
official order. Questions marked ``external`` (the image alignment item, scored by VQAScore in the
paper) belong to the hierarchy but are not asked to the checklist VLM.

This module owns the conversions between option levels, answer vectors and dimension indices.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from vrexp.checklist.prompting import fill_prompt

ABSENT = -1
QuestionKind = Literal["threshold", "presence"]


class ChecklistError(ValueError):
    """A checklist definition or an answer/level array that does not fit the hierarchy."""


@dataclass(frozen=True)
class Question:
    id: int
    text: str
    dimension: str
    sub_dimension: str
    kind: QuestionKind
    at_least: int | None = None  # option index of the boundary, for threshold questions
    external: bool = False

    def render(self, prompt: object | None = None, *, item: object = None) -> str:
        return fill_prompt(self.text, prompt, item=item)


@dataclass(frozen=True)
class SubDimension:
    name: str
    dimension: str
    options: tuple[str, ...]
    questions: tuple[Question, ...]
    presence: Question | None = None
    absent: str | None = None
    key: str | None = None

    @property
    def num_levels(self) -> int:
        return len(self.options)


@dataclass(frozen=True)
class Dimension:
    name: str
    sub_dimensions: tuple[SubDimension, ...]


@dataclass(frozen=True)
class Checklist:
    """An immutable checklist with vectorised conversions; build it with :meth:`from_config`."""

    name: str
    media: str
    dimensions: tuple[Dimension, ...]
    questions: tuple[Question, ...] = field(init=False)

    def __post_init__(self) -> None:
        by_id: dict[int, Question] = {}
        for sub in self.sub_dimensions:
            for q in ([sub.presence] if sub.presence else []) + list(sub.questions):
                seen = by_id.get(q.id)
                if seen is not None and (seen.text, seen.kind) != (q.text, q.kind):
                    raise ChecklistError(
                        f"checklist {self.name!r}: question id {q.id} is used for both "
                        f"{seen.text!r} and {q.text!r}"
                    )
                by_id.setdefault(q.id, q)
        object.__setattr__(self, "questions", tuple(by_id[i] for i in sorted(by_id)))

    # ----------------------------------------------------------------- structure
    @property
    def sub_dimensions(self) -> tuple[SubDimension, ...]:
        return tuple(s for d in self.dimensions for s in d.sub_dimensions)

    @property
    def dimension_names(self) -> list[str]:
        return [d.name for d in self.dimensions]

    @property
    def question_texts(self) -> list[str]:
        return [q.text for q in self.questions]

    @property
    def vlm_questions(self) -> tuple[Question, ...]:
        """Questions the checklist VLM answers (everything but external items)."""
        return tuple(q for q in self.questions if not q.external)

    @cached_property
    def _columns(self) -> dict[int, int]:
        return {q.id: col for col, q in enumerate(self.questions)}

    def column(self, question_id: int) -> int:
        """Column of the question with this id in answer arrays."""
        try:
            return self._columns[question_id]
        except KeyError:
            raise KeyError(
                f"checklist {self.name!r} has no question with id {question_id}"
            ) from None

    def render(self, prompt: object | None = None, *, item: object = None) -> list[str]:
        """All question texts, in column order, with ``[[prompt]]`` filled in."""
        return [q.render(prompt, item=item) for q in self.questions]

    def question_dimension(self) -> np.ndarray:
        """[Q] index into :attr:`dimension_names` for every question column."""
        names = self.dimension_names
        return np.array([names.index(q.dimension) for q in self.questions], dtype=np.int64)

    def question_sub_dimension(self) -> np.ndarray:
        """[Q] index into :attr:`sub_dimensions` (a shared presence question maps to its first owner)."""
        keys = [(s.dimension, s.name) for s in self.sub_dimensions]
        return np.array(
            [keys.index((q.dimension, q.sub_dimension)) for q in self.questions], dtype=np.int64
        )

    def question_weights(self, weights: Mapping[str, float], key: str = "weights") -> np.ndarray:
        """[Q] a weight per question column from ``weights``, keyed by dimension or sub-dimension
        name: a question takes its sub-dimension's weight if named, else its dimension's, else 1.
        A name the checklist lacks, or a weight that is negative or not finite, is refused naming
        ``key`` (the config key the mapping came from)."""
        subs = {s.name for s in self.sub_dimensions}
        known = subs | set(self.dimension_names)
        for name, weight in weights.items():
            if name not in known:
                raise ChecklistError(
                    f"{key}: {name!r} is neither a dimension nor a sub-dimension of checklist "
                    f"{self.name!r}; its dimensions: {self.dimension_names}, its sub-dimensions: "
                    f"{sorted(subs)}"
                )
            if not np.isfinite(weight) or weight < 0:
                raise ChecklistError(
                    f"{key}[{name!r}]={weight!r}: a weight must be finite and >= 0"
                )
        return np.array(
            [weights.get(q.sub_dimension, weights.get(q.dimension, 1.0)) for q in self.questions],
            dtype=np.float32,
        )

    def dimension_matrix(self) -> np.ndarray:
        """[Q, D] one-hot: column sums of ``answers * w`` against it give per-dimension sub-scores."""
        onehot = np.zeros((len(self.questions), len(self.dimensions)), dtype=np.float32)
        onehot[np.arange(len(self.questions)), self.question_dimension()] = 1.0
        return onehot

    # ----------------------------------------------------------------- conversions
    def answers_from_levels(self, levels: np.ndarray | Sequence[Sequence[int]]) -> np.ndarray:
        """[N, S] option levels (``-1`` = absent) -> [N, Q] hard answers in {0, 1}.

        Threshold questions of an absent sub-dimension answer 0 and are masked by
        :meth:`applicable`.
        """
        levels = np.asarray(levels)
        subs = self.sub_dimensions
        if levels.ndim != 2 or levels.shape[1] != len(subs):
            raise ChecklistError(
                f"levels for checklist {self.name!r} must have shape [N, {len(subs)}], got "
                f"{tuple(levels.shape)}"
            )
        answers = np.zeros((levels.shape[0], len(self.questions)), dtype=np.float32)
        presence_of: dict[int, np.ndarray] = {}
        for s, sub in enumerate(subs):
            lv = levels[:, s]
            bad = (lv >= sub.num_levels) | (lv < (ABSENT if sub.presence else 0))
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise ChecklistError(
                    f"level {int(lv[row])} at row {row} is invalid for sub-dimension "
                    f"{sub.dimension}/{sub.name} (options 0..{sub.num_levels - 1}"
                    f"{', -1 for absent' if sub.presence else ''})"
                )
            present = lv >= 0
            for q in sub.questions:
                answers[:, self.column(q.id)] = present & (lv <= q.at_least)
            if sub.presence is not None:
                other = presence_of.setdefault(sub.presence.id, present)
                if not np.array_equal(other, present):
                    row = int(np.flatnonzero(other != present)[0])
                    raise ChecklistError(
                        f"row {row}: sub-dimensions sharing presence question "
                        f"{sub.presence.text!r} disagree on presence"
                    )
                answers[:, self.column(sub.presence.id)] = present
        return answers

    def levels_from_answers(self, answers: np.ndarray) -> np.ndarray:
        """[N, Q] answers (hard or P(yes)) -> [N, S] most likely option levels.

        Each sub-dimension takes the level whose implied threshold answers have the highest
        likelihood under the given P(yes); with hard answers that is the level that contradicts the
        fewest answers. Ties go to the better option. A presence P(yes) <= 0.5 gives ``-1``.
        """
        answers = self._check_answers(answers)
        eps = 1e-6
        p = np.clip(answers, eps, 1 - eps)
        log_yes, log_no = np.log(p), np.log1p(-p)
        levels = np.empty((answers.shape[0], len(self.sub_dimensions)), dtype=np.int64)
        for s, sub in enumerate(self.sub_dimensions):
            cols = [self.column(q.id) for q in sub.questions]
            bounds = np.array([q.at_least for q in sub.questions])
            implied = (np.arange(sub.num_levels)[:, None] <= bounds[None, :]).astype(np.float64)
            loglik = log_yes[:, cols] @ implied.T + log_no[:, cols] @ (1 - implied).T
            levels[:, s] = loglik.argmax(axis=1)
            if sub.presence is not None:
                absent = answers[:, self.column(sub.presence.id)] <= 0.5
                levels[absent, s] = ABSENT
        return levels

    def applicable(self, answers: np.ndarray) -> np.ndarray:
        """[N, Q] bool: False where a presence answer (<= 0.5) masks the question."""
        answers = self._check_answers(answers)
        mask = np.ones(answers.shape, dtype=bool)
        for sub in self.sub_dimensions:
            if sub.presence is None:
                continue
            present = answers[:, self.column(sub.presence.id)] > 0.5
            for q in sub.questions:
                mask[:, self.column(q.id)] = present
        return mask

    def _check_answers(self, answers: np.ndarray) -> np.ndarray:
        answers = np.asarray(answers, dtype=np.float64)
        if answers.ndim != 2 or answers.shape[1] != len(self.questions):
            raise ChecklistError(
                f"answers for checklist {self.name!r} must have shape [N, {len(self.questions)}], "
                f"got {tuple(answers.shape)}"
            )
        if np.isnan(answers).any():
            row, col = np.argwhere(np.isnan(answers))[0]
            raise ChecklistError(
                f"answer is NaN at row {row}, question {self.questions[col].text!r}"
            )
        if (answers < 0).any() or (answers > 1).any():
            raise ChecklistError("answers must be hard {0, 1} answers or probabilities in [0, 1]")
        return answers

    # ----------------------------------------------------------------- variants
    def without(self, dimension_names: Iterable[str]) -> Checklist:
        """A copy with the named dimensions left out (for ablations)."""
        drop = set(dimension_names)
        unknown = drop - set(self.dimension_names)
        if unknown:
            raise ChecklistError(
                f"checklist {self.name!r} has no dimension(s) {sorted(unknown)}; "
                f"it has {self.dimension_names}"
            )
        kept = tuple(d for d in self.dimensions if d.name not in drop)
        if not kept:
            raise ChecklistError(f"dropping {sorted(drop)} leaves checklist {self.name!r} empty")
        return replace(self, dimensions=kept)

    # ----------------------------------------------------------------- (de)serialisation
    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Checklist:
        """Build from a ``dimensions/`` config (a plain mapping or an OmegaConf node)."""
        from omegaconf import DictConfig, OmegaConf

        if isinstance(config, DictConfig):
            config = OmegaConf.to_container(config, resolve=True, enum_to_str=True)
        name = config.get("name", "checklist")
        hierarchy = config.get("hierarchy")
        if not hierarchy:
            raise ChecklistError(f"checklist {name!r} has no 'hierarchy'")
        explicit_ids = [
            q.get("id") is not None
            for d in hierarchy
            for s in d["sub_dimensions"]
            for q in ([s["presence"]] if s.get("presence") else []) + list(s["questions"])
        ]
        if any(explicit_ids) and not all(explicit_ids):
            raise ChecklistError(f"checklist {name!r}: give every question an id, or none")
        next_id = iter(range(1, len(explicit_ids) + 1))
        dimensions = []
        for d in hierarchy:
            subs = tuple(
                _build_sub_dimension(name, d["name"], s, next_id) for s in d["sub_dimensions"]
            )
            dimensions.append(Dimension(name=d["name"], sub_dimensions=subs))
        checklist = cls(name=name, media=config.get("media", "image"), dimensions=tuple(dimensions))
        return checklist.without(config.get("drop") or [])

    @classmethod
    def from_yaml(cls, path: str | Path) -> Checklist:
        path = Path(path)
        try:
            config = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as err:
            raise ChecklistError(f"cannot read checklist file {path}: {err}") from err
        return cls.from_config(config)

    def to_config(self) -> dict[str, Any]:
        """Plain mapping that :meth:`from_config` turns back into an equal checklist."""

        def question(q: Question, sub: SubDimension) -> dict[str, Any]:
            out: dict[str, Any] = {"id": q.id, "text": q.text}
            if q.kind == "threshold":
                out["at_least"] = sub.options[q.at_least]
            if q.external:
                out["external"] = True
            return out

        def sub_dimension(sub: SubDimension) -> dict[str, Any]:
            out: dict[str, Any] = {"name": sub.name}
            if sub.key:
                out["key"] = sub.key
            out["options"] = list(sub.options)
            if sub.presence is not None:
                out["presence"] = {"id": sub.presence.id, "text": sub.presence.text}
                out["absent"] = sub.absent
            out["questions"] = [question(q, sub) for q in sub.questions]
            return out

        return {
            "name": self.name,
            "media": self.media,
            "hierarchy": [
                {"name": d.name, "sub_dimensions": [sub_dimension(s) for s in d.sub_dimensions]}
                for d in self.dimensions
            ],
        }

    def to_yaml(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_config(), sort_keys=False, width=120))


def _build_sub_dimension(
    checklist: str, dimension: str, spec: Mapping[str, Any], next_id: Iterator[int]
) -> SubDimension:
    where = f"checklist {checklist!r}, sub-dimension {dimension}/{spec.get('name')}"
    options = tuple(spec.get("options") or ())
    if len(options) < 2 or len(set(options)) != len(options):
        raise ChecklistError(f"{where}: needs at least two distinct options, got {list(options)}")
    presence = None
    if spec.get("presence"):
        p = spec["presence"]
        pid = p["id"] if p.get("id") is not None else next(next_id)
        presence = Question(pid, p["text"], dimension, spec["name"], "presence")
    questions_spec = list(spec.get("questions") or ())
    if not questions_spec:
        raise ChecklistError(f"{where}: has no questions")
    infer = all(q.get("at_least") is None for q in questions_spec)
    if infer and len(questions_spec) != len(options) - 1:
        raise ChecklistError(
            f"{where}: {len(options)} options need {len(options) - 1} threshold questions to infer "
            f"their boundaries, got {len(questions_spec)}; give each question 'at_least'"
        )
    questions = []
    for i, q in enumerate(questions_spec):
        if infer:
            bound = i
        elif q.get("at_least") not in options[:-1]:
            raise ChecklistError(
                f"{where}: question {q['text']!r} has at_least={q.get('at_least')!r}, which is not "
                f"one of the options {list(options[:-1])} (the worst option has no threshold)"
            )
        else:
            bound = options.index(q["at_least"])
        qid = q["id"] if q.get("id") is not None else next(next_id)
        questions.append(
            Question(
                qid, q["text"], dimension, spec["name"], "threshold", bound, bool(q.get("external"))
            )
        )
    bounds = [q.at_least for q in questions]
    if bounds != sorted(set(bounds)):
        raise ChecklistError(f"{where}: thresholds must be distinct and ordered best first")
    return SubDimension(
        name=spec["name"],
        dimension=dimension,
        options=options,
        questions=tuple(questions),
        presence=presence,
        absent=spec.get("absent") if presence else None,
        key=spec.get("key"),
    )
