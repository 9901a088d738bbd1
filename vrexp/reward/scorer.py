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
import logging
import os
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from vrexp.backbones import ChecklistBackbone, build_backbone, load_backbone
from vrexp.backbones.provenance import TrainedOn, resolve_device, trained_checklist, trained_on
from vrexp.checklist import Checklist, Question
from vrexp.configs.choices import DType, Media
from vrexp.configs.versioning import check_format, stamp
from vrexp.media import Clip
from vrexp.reward.inputs import MediaInput, is_single, media_kind, to_model_media
from vrexp.reward.linear import LinearReward, RewardError

log = logging.getLogger(__name__)
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
    prompts: list[str] = field(default_factory=list)  # fill the questions' [[prompt]]

    def __len__(self) -> int:
        return len(self.total)

    def item(self, index: int) -> dict[str, Any]:
        """One item as plain Python: total, sub-scores, and one row per question (its text with
        the item's prompt filled in)."""
        contribution = {
            q.id: float(c)
            for q, c in zip(self.feature_questions, self.contributions[index], strict=True)
        }
        prompt = self.prompts[index] if self.prompts else None
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
                    "question": q.render(prompt) if prompt is not None else q.text,
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
    """A checklist VLM plus a fitted :class:`LinearReward`: ``score`` media against prompts.

    Media are paths, PIL images, numpy arrays, torch tensors or :class:`~vrexp.media.Clip` objects
    (layouts and ranges: :mod:`vrexp.reward.inputs`). A model folder that records its training
    (``train_checklist`` writes it) is checked against what it is asked: a checklist with
    questions it never learnt, or media unlike its training data (a SynthWorld model shown a
    photo), give a warning; media of the other kind (an image for a video reward) an error.
    """

    def __init__(
        self,
        backbone: ChecklistBackbone,
        reward: LinearReward,
        *,
        hard_answers: bool = False,
        batch_size: int = 32,
    ) -> None:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise RewardError(f"batch_size={batch_size!r} must be an integer >= 1")
        self.backbone, self.reward = backbone, reward
        self.hard_answers, self.batch_size = bool(hard_answers), batch_size
        model_dir = backbone.config.name_or_path
        self.trained_on: TrainedOn | None = trained_on(model_dir)
        self._domain_warned = False
        _check_checklist(reward.checklist, trained_checklist(model_dir), model_dir)

    @property
    def checklist(self) -> Checklist:
        return self.reward.checklist

    @property
    def device(self) -> torch.device:
        return self.backbone.device

    def bounds(self) -> tuple[float, float]:
        """The lowest and highest total this reward can give (:meth:`LinearReward.bounds`)."""
        return self.reward.bounds()

    def to(
        self, device: str | torch.device | None = None, dtype: torch.dtype | None = None
    ) -> VisionReward:
        """Move the checklist model (``device=None``: the GPU when there is one); returns self."""
        self.backbone.to(device=resolve_device(device), dtype=dtype)
        return self

    # ----------------------------------------------------------------- folders
    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        *,
        device: str | torch.device | None = None,
        dtype: str | None = None,
        batch_size: int | None = None,
        **backbone_overrides: Any,
    ) -> VisionReward:
        """Load a VisionReward folder onto ``device`` (None: the GPU when there is one), in
        ``dtype`` (float32, bfloat16 or float16; None: the folder's own), ``batch_size`` items
        per forward (None: the folder's; halved automatically on a CUDA out-of-memory error).
        ``backbone_overrides`` are other BackboneConfig fields (e.g. ``question_batch_size``)."""
        directory = Path(directory)
        _require(directory, CHECKLIST, WEIGHTS, MODEL_DIR)
        target = resolve_device(device)
        reward, config = load_reward_files(directory)
        if dtype is not None:
            backbone_overrides["dtype"] = DType.of(dtype, "dtype").value
        backbone = load_backbone(directory / MODEL_DIR, **backbone_overrides).to(target)
        if batch_size is not None:
            config["batch_size"] = batch_size
        return cls(backbone, reward, **config)

    def save_pretrained(self, directory: str | Path) -> None:
        directory = Path(directory)
        save_reward_files(directory, self.reward, hard_answers=self.hard_answers)
        self.backbone.save_pretrained(directory / MODEL_DIR)

    # ----------------------------------------------------------------- scoring
    def prepare(
        self, media: MediaInput | Sequence[MediaInput], prompts: str | Sequence[str]
    ) -> tuple[list[np.ndarray | Clip], list[str]]:
        """Items as the backbone reads them, checked against the model; one prompt per item."""
        raw = [media] if is_single(media, prompts) else list(media)
        prompts = [prompts] * len(raw) if isinstance(prompts, str) else list(prompts)
        if len(prompts) != len(raw):
            raise RewardError(f"got {len(raw)} media but {len(prompts)} prompts")
        sampling = self.backbone.config.frames
        items = [to_model_media(m, sampling, index=i) for i, m in enumerate(raw)]
        expected = Media(self.checklist.media)
        for index, item in enumerate(items):
            if media_kind(item) is not expected:
                raise MediaKindError(
                    f"media[{index}] is {'a video' if expected is Media.image else 'an image'}, "
                    f"but this VisionReward scores {expected.value}s (checklist "
                    f"{self.checklist.name!r}); use a {media_kind(item).value} reward"
                    + (
                        ", or pass the frame you mean as an image"
                        if expected is Media.image
                        else ""
                    )
                )
        self._check_domain(items)
        return items, prompts

    def answer(
        self,
        media: MediaInput | Sequence[MediaInput],
        prompts: str | Sequence[str],
        *,
        progress: bool | None = None,
    ) -> torch.Tensor:
        """[N, Q] P(yes) of every checklist question (hard {0, 1} with ``hard_answers``).

        ``progress``: a progress bar on stderr (None: when there is more than one batch)."""
        return self._answer(*self.prepare(media, prompts), progress)

    def _answer(
        self, items: list[np.ndarray | Clip], prompts: list[str], progress: bool | None
    ) -> torch.Tensor:
        texts = [[q.render(p) for q in self.checklist.questions] for p in prompts]
        p_yes = torch.from_numpy(self._answer_batches(items, texts, progress))
        return (p_yes > 0.5).double() if self.hard_answers else p_yes

    def _answer_batches(
        self, items: list[np.ndarray | Clip], texts: list[list[str]], progress: bool | None
    ) -> np.ndarray:
        out = np.zeros((len(items), len(texts[0]) if texts else 0), dtype=np.float64)
        show = len(items) > self.batch_size if progress is None else progress
        with Progress(transient=True, disable=not show) as bar:
            job = bar.add_task("VisionReward", total=len(items))
            start = 0
            while start < len(items):
                stop = min(start + self.batch_size, len(items))
                try:
                    out[start:stop] = self.backbone.answer_batched(
                        items[start:stop], texts[start:stop], self.batch_size
                    )
                except torch.cuda.OutOfMemoryError:
                    if self.batch_size == 1:
                        raise
                    self.batch_size //= 2
                    torch.cuda.empty_cache()
                    log.warning("out of GPU memory: batch size halved to %d", self.batch_size)
                    continue
                bar.advance(job, stop - start)
                start = stop
        return out

    def _check_domain(self, items: list[np.ndarray | Clip]) -> None:
        """Warn (once) when a SynthWorld-trained model is shown media that SynthWorld never
        renders: any frame size other than its square render size."""
        info = self.trained_on
        if self._domain_warned or info is None or not info.synthworld or not info.image_size:
            return
        size = (info.image_size, info.image_size)
        for index, item in enumerate(items):
            shape = (item.frames if isinstance(item, Clip) else item).shape[-3:-1]
            if tuple(shape) != size:
                self._domain_warned = True
                warnings.warn(
                    f"media[{index}] is {shape[1]}x{shape[0]} pixels, but this VisionReward's "
                    f"checklist model was trained on SynthWorld ({info.dataset!r}: synthetic "
                    f"{size[0]}x{size[1]} scenes) only, so its scores of other media mean "
                    "nothing. A reward for real media is trained on VisionRewardDB (README).",
                    DomainWarning,
                    stacklevel=3,
                )
                return

    def score(
        self,
        media: MediaInput | Sequence[MediaInput],
        prompts: str | Sequence[str],
        *,
        alignment: torch.Tensor | np.ndarray | None = None,
        progress: bool | None = None,
    ) -> RewardScores:
        items, prompts = self.prepare(media, prompts)
        p_yes = self._answer(items, prompts, progress)
        return RewardScores(
            total=self.reward.score(p_yes, alignment),
            dimensions=self.reward.dimension_scores(p_yes, alignment),
            p_yes=p_yes,
            contributions=self.reward.contributions(p_yes, alignment),
            dimension_names=self.checklist.dimension_names,
            questions=self.checklist.questions,
            feature_questions=self.reward.feature_questions,
            prompts=prompts,
        )

    def compare(self, a: MediaInput, b: MediaInput, prompt: str) -> Comparison:
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

    def explain(self, media: MediaInput, prompt: str) -> Table:
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


class MediaKindError(RewardError):
    """Media of the other kind than the reward's (an image for a video reward, or back)."""


class ChecklistMismatchWarning(UserWarning):
    """A checklist with questions the checklist model was never trained to answer."""


class DomainWarning(UserWarning):
    """Media unlike the checklist model's training data (a SynthWorld model shown a photo)."""


def _check_checklist(checklist: Checklist, trained: Checklist | None, model_dir: Any) -> None:
    if trained is None:  # a zero-shot VLM, or a folder that does not record its training
        return
    known = {q.text for q in trained.vlm_questions}
    unseen = [q for q in checklist.vlm_questions if q.text not in known]
    if unseen:
        warnings.warn(
            f"{len(unseen)} of the {len(checklist.vlm_questions)} questions of checklist "
            f"{checklist.name!r} were never in the training of the checklist model at "
            f"{model_dir} (trained on {trained.name!r}), e.g. {unseen[0].text!r}: its answers "
            "to them are untrained guesses",
            ChecklistMismatchWarning,
            stacklevel=3,
        )


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
    path = directory / CONFIG
    try:
        config = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RewardError(f"cannot read {path}: {err}") from err
    if not isinstance(config, dict):
        raise RewardError(f"{path} must hold a JSON object, got {type(config).__name__}")
    _, config = check_format(directory, config)
    return reward, check_reward_config(config, path)


# reward_config.json's keys: their type and range (the folder's defaults are the constructor's).
REWARD_CONFIG_KEYS = {
    "hard_answers": ("true or false", lambda v: isinstance(v, bool)),
    "batch_size": (
        "an integer >= 1",
        lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
    ),
}


def check_reward_config(config: dict[str, Any], path: Path) -> dict[str, Any]:
    """``config`` when every key of ``reward_config.json`` is known and in range; else raise naming
    the file and the key (JSON ``"no"`` is not false, and ``-1`` items per batch scores nothing)."""
    for key, value in config.items():
        if key not in REWARD_CONFIG_KEYS:
            raise RewardError(f"{path}: unknown key {key!r} (known: {sorted(REWARD_CONFIG_KEYS)})")
        expected, ok = REWARD_CONFIG_KEYS[key]
        if not ok(value):
            raise RewardError(f"{path}: {key}={value!r} must be {expected}")
    return config


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


def load_linear_reward(reward_dir: str | Path) -> tuple[LinearReward, bool, dict[str, Any]]:
    """(reward, hard_answers, fit_info) of a fit_weights output folder."""
    reward_dir = Path(reward_dir)
    reward, config = load_reward_files(reward_dir)
    info_path = reward_dir / "fit_info.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    return reward, config.get("hard_answers", False), info


def load_reward(task: Any, backbone: Any = None) -> VisionReward:
    """The VisionReward a scoring task names, on its device: ``task.reward_dir`` (a saved
    folder), or the released weighting ``task.official`` answered by ``backbone`` (a
    ``BackboneConfig``); ``task.device``, ``task.dtype`` and ``task.batch_size`` as in
    :class:`vrexp.configs.tasks.InferenceSettings`. Shared by ``task=score`` and
    ``task=benchmark``."""
    if task.reward_dir is not None:
        return VisionReward.from_pretrained(
            task.reward_dir,
            device=task.device,
            dtype=None if task.dtype is None else DType(task.dtype).value,
            batch_size=task.batch_size,
        )
    if backbone is None:
        raise RewardError(f"the released weighting {task.official!r} needs a backbone config")
    if task.dtype is not None:
        backbone.dtype = task.dtype
    model = build_backbone(backbone).to(resolve_device(task.device))
    return VisionReward(
        model, LinearReward.from_official(task.official), batch_size=task.batch_size
    )
