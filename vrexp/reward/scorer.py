"""``VisionReward``: the scorer users call: a checklist VLM plus a fitted linear weighting.

A VisionReward folder (``save_pretrained`` / ``from_pretrained``) holds::

    checklist.yaml        the checklist whose answers are weighted
    weights.json          the LinearReward (one non-negative weight per feature question)
    reward_config.json    how answers are read (P(yes) or hard answers) and batched
    checklist_model/      the checklist VLM as an HF folder (ChecklistBackbone.save_pretrained)

``score`` answers every checklist question (external ones, such as the official image alignment
item, are answered by the same VLM unless ``alignment=`` is given), then returns the total, the
per-dimension sub-scores (paper Eq. 6) and each question's P(yes) and contribution.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.markup import escape
from rich.table import Table

from vrexp.backbones import ChecklistBackbone, load_backbone
from vrexp.checklist import Checklist, Question
from vrexp.configs.versioning import check_format, stamp
from vrexp.media import load_media
from vrexp.reward.linear import LinearReward, RewardError

MediaLike = str | Path | np.ndarray
MODEL_DIR, WEIGHTS, CHECKLIST, CONFIG = (
    "checklist_model",
    "weights.json",
    "checklist.yaml",
    "reward_config.json",
)


@dataclass
class RewardScores:
    """Scores of N items: totals, per-dimension sub-scores and the per-question explanation."""

    total: torch.Tensor  # [N]
    dimensions: torch.Tensor  # [N, D]
    p_yes: torch.Tensor  # [N, Q], every checklist question
    contributions: torch.Tensor  # [N, F], weight x feature of each feature question
    dimension_names: list[str]
    questions: tuple[Question, ...]
    feature_questions: tuple[Question, ...]

    def __len__(self) -> int:
        return len(self.total)

    def item(self, index: int) -> dict[str, Any]:
        """One item as plain Python: total, sub-scores, and one row per question."""
        contribution = {
            q.id: float(c)
            for q, c in zip(self.feature_questions, self.contributions[index], strict=True)
        }
        return {
            "total": float(self.total[index]),
            "dimensions": {
                name: float(v)
                for name, v in zip(self.dimension_names, self.dimensions[index], strict=True)
            },
            "questions": [
                {
                    "id": q.id,
                    "dimension": q.dimension,
                    "question": q.text,
                    "p_yes": float(p),
                    "contribution": contribution.get(q.id),  # None for presence questions
                }
                for q, p in zip(self.questions, self.p_yes[index], strict=True)
            ],
        }


@dataclass
class Comparison:
    preferred: str  # "A", "B" or "tie"
    margin: float  # total(A) - total(B)
    dimension_margins: dict[str, float]


class VisionReward:
    def __init__(
        self,
        backbone: ChecklistBackbone,
        reward: LinearReward,
        *,
        hard_answers: bool = False,
        batch_size: int = 32,
    ) -> None:
        self.backbone, self.reward = backbone, reward
        self.hard_answers, self.batch_size = hard_answers, batch_size

    @property
    def checklist(self) -> Checklist:
        return self.reward.checklist

    # ----------------------------------------------------------------- folders
    @classmethod
    def from_pretrained(cls, directory: str | Path, **backbone_overrides: Any) -> VisionReward:
        directory = Path(directory)
        _require(directory, CHECKLIST, WEIGHTS, MODEL_DIR)
        reward, config = load_reward_files(directory)
        backbone = load_backbone(directory / MODEL_DIR, **backbone_overrides)
        return cls(backbone, reward, **config)

    def save_pretrained(self, directory: str | Path) -> None:
        directory = Path(directory)
        save_reward_files(directory, self.reward, hard_answers=self.hard_answers)
        self.backbone.save_pretrained(directory / MODEL_DIR)

    # ----------------------------------------------------------------- scoring
    def answer(
        self, media: MediaLike | Sequence[MediaLike], prompts: str | Sequence[str]
    ) -> torch.Tensor:
        """[N, Q] P(yes) of every checklist question (hard {0, 1} with ``hard_answers``)."""
        items, prompts = _as_lists(media, prompts)
        texts = [[q.render(p) for q in self.checklist.questions] for p in prompts]
        p_yes = torch.from_numpy(self.backbone.answer_batched(items, texts, self.batch_size))
        return (p_yes > 0.5).double() if self.hard_answers else p_yes

    def score(
        self,
        media: MediaLike | Sequence[MediaLike],
        prompts: str | Sequence[str],
        *,
        alignment: torch.Tensor | np.ndarray | None = None,
    ) -> RewardScores:
        p_yes = self.answer(media, prompts)
        return RewardScores(
            total=self.reward.score(p_yes, alignment),
            dimensions=self.reward.dimension_scores(p_yes, alignment),
            p_yes=p_yes,
            contributions=self.reward.contributions(p_yes, alignment),
            dimension_names=self.checklist.dimension_names,
            questions=self.checklist.questions,
            feature_questions=self.reward.feature_questions,
        )

    def compare(self, a: MediaLike, b: MediaLike, prompt: str) -> Comparison:
        scores = self.score([a, b], [prompt, prompt])
        margin = float(scores.total[0] - scores.total[1])
        return Comparison(
            preferred="A" if margin > 0 else "B" if margin < 0 else "tie",
            margin=margin,
            dimension_margins={
                name: float(scores.dimensions[0, d] - scores.dimensions[1, d])
                for d, name in enumerate(scores.dimension_names)
            },
        )

    def explain(self, media: MediaLike, prompt: str) -> Table:
        """A rich table: each question's answer and contribution, grouped by dimension."""
        item = self.score([media], [prompt]).item(0)
        # Question texts and prompts are data: "[[prompt]]" or "[red]" must not read as markup.
        table = Table(title=escape(f"VisionReward {item['total']:+.3f} for {prompt!r}"))
        for column, justify in (
            ("dimension", "left"),
            ("question", "left"),
            ("P(yes)", "right"),
            ("contribution", "right"),
        ):
            table.add_column(column, justify=justify)
        for name in self.checklist.dimension_names:
            rows = [q for q in item["questions"] if q["dimension"] == name]
            for i, q in enumerate(rows):
                table.add_row(
                    escape(name) if i == 0 else "",
                    escape(q["question"]),
                    f"{q['p_yes']:.2f}",
                    "mask" if q["contribution"] is None else f"{q['contribution']:+.3f}",
                )
            table.add_row(
                "",
                f"[bold]{escape(name)} sub-score[/]",
                "",
                f"[bold]{item['dimensions'][name]:+.3f}[/]",
                end_section=True,
            )
        return table


def save_reward_files(directory: Path, reward: LinearReward, *, hard_answers: bool) -> None:
    """The non-model files of a VisionReward folder."""
    directory.mkdir(parents=True, exist_ok=True)
    reward.checklist.to_yaml(directory / CHECKLIST)
    reward.save(directory / WEIGHTS)
    config = stamp({"hard_answers": hard_answers})
    (directory / CONFIG).write_text(json.dumps(config, indent=2) + "\n")


def load_reward_files(directory: str | Path) -> tuple[LinearReward, dict[str, Any]]:
    """The LinearReward and reward settings of a VisionReward (or fit_weights) folder."""
    directory = Path(directory)
    _require(directory, CHECKLIST, WEIGHTS)
    reward = LinearReward.load(directory / WEIGHTS, Checklist.from_yaml(directory / CHECKLIST))
    config = json.loads((directory / CONFIG).read_text()) if (directory / CONFIG).exists() else {}
    _, config = check_format(directory, config)
    return reward, config


def _require(directory: Path, *names: str) -> None:
    missing = [n for n in names if not (directory / n).exists()]
    if missing:
        raise FileNotFoundError(
            f"{directory} is not a VisionReward folder: missing {missing} (write one with "
            "VisionReward.save_pretrained or `python run.py task=fit_weights task.model_dir=...`)"
        )


def link_model(model_dir: str | Path, directory: Path) -> None:
    """Put a checklist model folder into a VisionReward folder: hard links where the file system
    allows (no copy of multi-GB weights), else a copy."""
    target = directory / MODEL_DIR
    if target.exists():
        shutil.rmtree(target)

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(model_dir, target, copy_function=link)


def _as_lists(
    media: MediaLike | Sequence[MediaLike], prompts: str | Sequence[str]
) -> tuple[list[np.ndarray], list[str]]:
    single = isinstance(media, (str, Path)) or (
        isinstance(media, np.ndarray) and media.ndim in (3, 4) and isinstance(prompts, str)
    )
    items = [media] if single else list(media)
    prompts = [prompts] * len(items) if isinstance(prompts, str) else list(prompts)
    if len(prompts) != len(items):
        raise RewardError(f"got {len(items)} media but {len(prompts)} prompts")
    return [load_media(m) if isinstance(m, (str, Path)) else np.asarray(m) for m in items], prompts


def load_linear_reward(reward_dir: str | Path) -> tuple[LinearReward, bool, dict[str, Any]]:
    """(reward, hard_answers, fit_info) of a fit_weights output folder."""
    reward_dir = Path(reward_dir)
    reward, config = load_reward_files(reward_dir)
    info_path = reward_dir / "fit_info.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    return reward, bool(config.get("hard_answers", False)), info
