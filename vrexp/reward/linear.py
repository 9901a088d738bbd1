"""``LinearReward``: the linear weighting of checklist answers into a score (docs/method.md §4).

This module owns the mapping from an answer array (one column per checklist question, flat order)
to feature vectors, total scores and per-dimension scores; the released VisionReward weights are
read by :mod:`vrexp.reward.official`.

- *Feature questions* are the checklist's questions minus its presence questions: presence
  questions carry no weight, they only gate (mask) their dependants.
- Encoding ``"pm1"`` maps an answer ``a`` in [0, 1] to ``2a - 1`` (the released code's ±1);
  ``"binary"`` keeps ``a`` (the paper's ``1[A = yes]``). Either way a dependant whose gate answer is
  "no" (P(yes) <= 0.5, as :meth:`Checklist.applicable`) gets feature 0, and an *external* question
  (the image alignment item, VQAScore) enters as its raw probability, never re-encoded.
- ``score = features @ weights`` with no intercept (divided by the number of features when
  ``reduction="mean"``, the released video formula); ``dimension_scores`` are the per-dimension sums
  of ``weight * feature`` (paper Eq. 6) and add up to the score.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from vrexp.checklist import Checklist, ChecklistError, Dimension, Question, SubDimension
from vrexp.configs.choices import Encoding

Reduction = Literal["sum", "mean"]
Masks = Mapping[int, Sequence[int]]


class RewardError(ChecklistError):
    """Weights, answers or a saved reward that do not fit the checklist."""


class LinearReward:
    """Non-negative linear weights over a checklist's feature questions.

    Args:
        checklist: the checklist whose answers are scored (answers have one column per
            ``checklist.questions``, flat order).
        weights: one non-negative finite weight per :attr:`feature_questions`, in that order.
        encoding: ``"pm1"`` (released code, answers -> 2a - 1) or ``"binary"`` (paper, a as is).
        reduction: ``"sum"`` (paper) or ``"mean"`` (released video code, sum / number of features).
        masks: presence question id -> ids of the feature questions it gates. ``None`` takes the
            checklist's own structure (each sub-dimension's presence gates its questions); ``{}``
            turns masking off (the released video formula).
    """

    def __init__(
        self,
        checklist: Checklist,
        weights: Sequence[float] | np.ndarray | torch.Tensor,
        *,
        encoding: Encoding = "pm1",
        reduction: Reduction = "sum",
        masks: Masks | None = None,
    ) -> None:
        if encoding not in Encoding.values():
            raise RewardError(f"encoding must be one of {Encoding.values()}, got {encoding!r}")
        if reduction not in ("sum", "mean"):
            raise RewardError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
        self.checklist = checklist
        self.encoding: Encoding = encoding
        self.reduction: Reduction = reduction
        self._features = tuple(q for q in checklist.questions if q.kind != "presence")
        if not self._features:
            raise RewardError(
                f"checklist {checklist.name!r} has no feature (non-presence) questions"
            )
        self.weights = self._check_weights(weights)
        self.masks = self._check_masks(_structure_masks(checklist) if masks is None else masks)
        # Column plumbing, computed once: where each feature lives in the answer array.
        self._feature_cols = torch.tensor([checklist.column(q.id) for q in self._features])
        self._external = torch.tensor([q.external for q in self._features])
        index = {q.id: i for i, q in enumerate(self._features)}
        self._gates = [
            (checklist.column(gate), torch.tensor([index[d] for d in deps]))
            for gate, deps in self.masks.items()
            if deps
        ]
        onehot = torch.zeros(len(self._features), len(checklist.dimensions), dtype=torch.float64)
        names = checklist.dimension_names
        for i, q in enumerate(self._features):
            onehot[i, names.index(q.dimension)] = 1.0
        self._dimension_onehot = onehot

    # ----------------------------------------------------------------- structure
    @property
    def feature_questions(self) -> tuple[Question, ...]:
        """The weighted questions, in weight order (the checklist's flat order, presence removed)."""
        return self._features

    @property
    def num_features(self) -> int:
        return len(self._features)

    def weight_of(self, question_id: int) -> float:
        """The weight of the feature question with this id."""
        for q, w in zip(self._features, self.weights.tolist(), strict=True):
            if q.id == question_id:
                return w
        raise KeyError(
            f"checklist {self.checklist.name!r} has no feature question with id {question_id}"
        )

    def __repr__(self) -> str:
        nonzero = int((self.weights > 0).sum())
        return (
            f"LinearReward(checklist={self.checklist.name!r}, features={self.num_features}, "
            f"nonzero={nonzero}, encoding={self.encoding!r}, reduction={self.reduction!r})"
        )

    # ----------------------------------------------------------------- scoring
    def features(
        self, answers: torch.Tensor | np.ndarray, alignment: torch.Tensor | np.ndarray | None = None
    ) -> torch.Tensor:
        """[N, Q] answers (P(yes) or hard {0, 1}) -> [N, F] encoded, masked features.

        ``alignment`` ([N], or [N, E] for E external questions) replaces the external questions'
        columns; those columns are then not read (they may hold NaN). Output dtype follows a
        floating input (float64 otherwise), on the answers' device.
        """
        x = self._check_answers(answers, skip_external=alignment is not None)
        feats = x[:, self._feature_cols.to(x.device)]
        external = self._external.to(x.device)
        if self.encoding == "pm1":
            # External items stay raw probabilities: that is how the released code feeds VQAScore.
            feats = torch.where(external, feats, 2.0 * feats - 1.0)
        if alignment is not None:
            feats[:, external] = self._check_alignment(alignment, x)
        for gate_col, deps in self._gates:
            present = (x[:, gate_col] > 0.5).to(feats.dtype)
            feats[:, deps.to(x.device)] *= present[:, None]
        return feats

    def contributions(
        self, answers: torch.Tensor | np.ndarray, alignment: torch.Tensor | np.ndarray | None = None
    ) -> torch.Tensor:
        """[N, F] ``weight * feature`` (divided by F for ``reduction="mean"``); rows sum to the score."""
        feats = self.features(answers, alignment)
        out = feats * self.weights.to(feats.device, feats.dtype)
        return out / self.num_features if self.reduction == "mean" else out

    def score(
        self, answers: torch.Tensor | np.ndarray, alignment: torch.Tensor | np.ndarray | None = None
    ) -> torch.Tensor:
        """[N] total reward."""
        feats = self.features(answers, alignment)
        out = feats @ self.weights.to(feats.device, feats.dtype)
        return out / self.num_features if self.reduction == "mean" else out

    def bounds(self) -> tuple[float, float]:
        """The lowest and highest total any answers can give: every weighted answer no (-1 in
        pm1, 0 in binary; an external raw probability 0) or yes (1), with every gate present.
        ``(total - low) / (high - low)`` puts rewards of different checklists on [0, 1]."""
        w = self.weights.double()
        low_feature = torch.where(
            self._external, 0.0, -1.0 if self.encoding == "pm1" else 0.0
        ).double()
        low, high = float(w @ low_feature), float(w.sum())
        if self.reduction == "mean":
            low, high = low / self.num_features, high / self.num_features
        return low, high

    def dimension_scores(
        self, answers: torch.Tensor | np.ndarray, alignment: torch.Tensor | np.ndarray | None = None
    ) -> torch.Tensor:
        """[N, D] per-dimension scores over ``checklist.dimension_names`` (paper Eq. 6)."""
        contrib = self.contributions(answers, alignment)
        return contrib @ self._dimension_onehot.to(contrib.device, contrib.dtype)

    # ----------------------------------------------------------------- validation
    def _check_weights(self, weights: Sequence[float] | np.ndarray | torch.Tensor) -> torch.Tensor:
        name = self.checklist.name
        w = torch.as_tensor(
            weights.detach().cpu() if isinstance(weights, torch.Tensor) else np.asarray(weights),
            dtype=torch.float64,
        ).flatten()
        if w.numel() != len(self._features):
            raise RewardError(
                f"got {w.numel()} weights, but checklist {name!r} has {len(self._features)} feature "
                f"questions ({len(self.checklist.questions)} questions minus "
                f"{len(self.checklist.questions) - len(self._features)} presence questions)"
            )
        for q, value in zip(self._features, w.tolist(), strict=True):
            if not np.isfinite(value) or value < 0:
                raise RewardError(
                    f"checklist {name!r}: weight of question {q.id} {q.text!r} is {value}; weights "
                    f"must be finite and >= 0"
                )
        return w

    def _check_masks(self, masks: Masks) -> dict[int, tuple[int, ...]]:
        name = self.checklist.name
        by_id = {q.id: q for q in self.checklist.questions}
        feature_ids = {q.id for q in self._features}
        out: dict[int, tuple[int, ...]] = {}
        for gate, deps in masks.items():
            gate = int(gate)
            if gate not in by_id or by_id[gate].kind != "presence":
                raise RewardError(
                    f"checklist {name!r}: mask gate {gate} is not a presence question"
                )
            bad = [int(d) for d in deps if int(d) not in feature_ids]
            if bad:
                raise RewardError(
                    f"checklist {name!r}: presence question {gate} gates {bad}, which are not "
                    f"feature questions"
                )
            out[gate] = tuple(sorted(int(d) for d in deps))
        return out

    def _check_answers(
        self, answers: torch.Tensor | np.ndarray, *, skip_external: bool
    ) -> torch.Tensor:
        c = self.checklist
        x = answers if isinstance(answers, torch.Tensor) else torch.as_tensor(np.asarray(answers))
        x = x if x.is_floating_point() else x.to(torch.float64)
        if x.ndim != 2 or x.shape[1] != len(c.questions):
            raise ChecklistError(
                f"answers for checklist {c.name!r} must have shape [N, {len(c.questions)}], got "
                f"{tuple(x.shape)}"
            )
        checked = x
        if skip_external:
            keep = torch.tensor([not q.external for q in c.questions], device=x.device)
            checked = x[:, keep]
        questions = [q for q in c.questions if not (skip_external and q.external)]
        nan = torch.isnan(checked)
        if nan.any():
            row, col = (int(v) for v in torch.nonzero(nan)[0])
            q = questions[col]
            hint = " (an external question: pass its values as alignment=)" if q.external else ""
            raise ChecklistError(
                f"answers for checklist {c.name!r}: answer is NaN at row {row}, question {q.id} "
                f"{q.text!r}{hint}"
            )
        if ((checked < 0) | (checked > 1)).any():
            raise ChecklistError(
                f"answers for checklist {c.name!r} must be hard {{0, 1}} answers or probabilities "
                f"in [0, 1]"
            )
        return x

    def _check_alignment(
        self, alignment: torch.Tensor | np.ndarray, x: torch.Tensor
    ) -> torch.Tensor:
        n_ext = int(self._external.sum())
        if n_ext == 0:
            raise RewardError(
                f"alignment was given, but checklist {self.checklist.name!r} has no external question"
            )
        a = (
            alignment
            if isinstance(alignment, torch.Tensor)
            else torch.as_tensor(np.asarray(alignment))
        )
        a = a.to(x.device, x.dtype)
        if a.ndim == 1:
            a = a[:, None]
        if a.shape != (x.shape[0], n_ext):
            raise RewardError(
                f"alignment must have shape [{x.shape[0]}] or [{x.shape[0]}, {n_ext}] for checklist "
                f"{self.checklist.name!r}, got {tuple(alignment.shape)}"
            )
        if torch.isnan(a).any() or ((a < 0) | (a > 1)).any():
            raise RewardError("alignment values must be probabilities in [0, 1] (no NaN)")
        return a

    # ----------------------------------------------------------------- pruning
    def questions_above(self, threshold: float = 0.0) -> set[int]:
        """The ids of the questions weighted above ``threshold``."""
        weights = self.weights.tolist()
        return {q.id for q, w in zip(self._features, weights, strict=True) if w > threshold}

    def select_checklist(self, threshold: float = 0.0, *, name: str | None = None) -> Checklist:
        """The checklist pruned to questions with weight > ``threshold`` (the paper's select sets).

        Presence questions stay while a dependant of theirs stays; sub-dimensions and dimensions
        left without questions are dropped. The result is a plain :class:`Checklist` (write it with
        :meth:`Checklist.to_yaml`).
        """
        keep = self.questions_above(threshold)
        if not keep:
            raise RewardError(
                f"no weight of {self.checklist.name!r} exceeds {threshold}; nothing left to select"
            )
        dimensions = []
        for dim in self.checklist.dimensions:
            subs = []
            for sub in dim.sub_dimensions:
                kept = tuple(q for q in sub.questions if q.id in keep)
                if kept:
                    subs.append(
                        SubDimension(
                            name=sub.name,
                            dimension=sub.dimension,
                            options=sub.options,
                            questions=kept,
                            presence=sub.presence,
                            absent=sub.absent,
                            key=sub.key,
                        )
                    )
            if subs:
                dimensions.append(Dimension(name=dim.name, sub_dimensions=tuple(subs)))
        return Checklist(
            name=name or f"{self.checklist.name}_select",
            media=self.checklist.media,
            dimensions=tuple(dimensions),
        )

    # ----------------------------------------------------------------- (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        return {
            "checklist": self.checklist.name,
            "encoding": self.encoding,
            "reduction": self.reduction,
            "masks": [{"presence": g, "dependants": list(d)} for g, d in self.masks.items()],
            "questions": [
                {"id": q.id, "text": q.text, "dimension": q.dimension, "weight": w}
                for q, w in zip(self._features, self.weights.tolist(), strict=True)
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], checklist: Checklist) -> LinearReward:
        """Rebuild against ``checklist``; its feature questions must match the saved ones."""
        saved = list(data["questions"])
        features = [q for q in checklist.questions if q.kind != "presence"]
        origin = f"reward saved for checklist {data.get('checklist')!r}"
        for i, (s, q) in enumerate(zip(saved, features, strict=False)):
            if (int(s["id"]), s["text"], s.get("dimension", q.dimension)) != (
                q.id,
                q.text,
                q.dimension,
            ):
                raise RewardError(
                    f"{origin} does not match checklist {checklist.name!r}: feature {i} is question "
                    f"{s['id']} {s['text']!r} ({s.get('dimension')}) in the file but question "
                    f"{q.id} {q.text!r} ({q.dimension}) in the checklist"
                )
        if len(saved) != len(features):
            extra = saved[len(features)] if len(saved) > len(features) else None
            missing = features[len(saved)] if len(features) > len(saved) else None
            first = (
                f"question {extra['id']} {extra['text']!r} is only in the file"
                if extra
                else f"question {missing.id} {missing.text!r} is only in the checklist"
            )
            raise RewardError(
                f"{origin} has {len(saved)} feature questions, checklist {checklist.name!r} has "
                f"{len(features)}: {first}"
            )
        masks = data.get("masks")
        return cls(
            checklist,
            [float(s["weight"]) for s in saved],
            encoding=data.get("encoding", "pm1"),
            reduction=data.get("reduction", "sum"),
            masks=None if masks is None else {int(m["presence"]): m["dependants"] for m in masks},
        )

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path, checklist: Checklist) -> LinearReward:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise RewardError(f"cannot read reward file {path}: {err}") from err
        return cls.from_dict(data, checklist)

    # ----------------------------------------------------------------- released weights
    @classmethod
    def from_official(cls, name: str, **kwargs: Any) -> LinearReward:
        """The released VisionReward weights; see :func:`vrexp.reward.official.official_reward`."""
        from vrexp.reward.official import official_reward

        return official_reward(name, **kwargs)


def _structure_masks(checklist: Checklist) -> dict[int, tuple[int, ...]]:
    """Presence id -> the ids of the questions of every sub-dimension it gates."""
    masks: dict[int, list[int]] = {}
    for sub in checklist.sub_dimensions:
        if sub.presence is not None:
            masks.setdefault(sub.presence.id, []).extend(q.id for q in sub.questions)
    return {g: tuple(sorted(d)) for g, d in masks.items()}
