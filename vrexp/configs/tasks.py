"""Schemas of the reward-side tasks: make_data, train_checklist, annotate, fit_weights, evaluate,
the ``pipeline`` chain that runs them in order (and its data-efficiency curve), and score and
benchmark.

Folder settings left null are filled in by the stage (its run folder) or, inside a chain, by the
chain's folder layout; the prompt partition comes from ``dataset.partition``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import MISSING

from vrexp.configs.checks import ConfigValueError, require
from vrexp.configs.choices import (
    Baseline,
    DType,
    Encoding,
    ModelTies,
    Part,
    Protocol,
    QuestionSelection,
    Solver,
)
from vrexp.configs.training import BackboneOptimSettings, ItemCacheSettings, TrainingBudget


@dataclass
class MakeDataTaskConfig:
    name: str = "make_data"
    overwrite: bool = False  # re-render a split whose manifest differs instead of failing
    print_summary: bool = True


@dataclass
class TrainChecklistTaskConfig(BackboneOptimSettings, TrainingBudget, ItemCacheSettings):
    name: str = "train_checklist"
    weight_decay: float = 0.01
    warmup_steps: int = 100
    batch_size: int = 32  # items per step; each brings all of its drawn questions
    balanced: bool = True  # equal yes/no per question each epoch (paper §3.2)
    questions_per_item: int | None = None  # cap on an item's questions per step (null: all drawn)
    # SynthWorld: per item and epoch, the alignment questions asked again under this many other
    # training prompts, labelled by the oracle (vrexp/data/synthworld/counterfactual.py)
    prompt_swaps: int = 0
    # SynthWorld: per item and epoch, "Are the objects in the image <colour>?" ("in the video"
    # for video) for the colour the oracle saw (yes) and another (no), trained as the first
    # alignment question
    colour_questions: bool = False
    # The loss weight of each question, by dimension or sub-dimension name (a sub-dimension's
    # weight wins over its dimension's; unnamed: 1), e.g. {Detail refinement: 4}
    loss_weights: dict[str, float] = field(default_factory=dict)
    max_epochs: int | None = 30
    save_dir: str | None = (
        None  # the trained checklist model (HF folder); null: <run>/checklist_model
    )
    # A rerun with other settings resumes nothing: refused, or (true) its checkpoints deleted.
    overwrite: bool = False

    def __post_init__(self) -> None:
        require(
            "task",
            {
                "batch_size": self.batch_size >= 1,
                "questions_per_item": self.questions_per_item is None
                or self.questions_per_item >= 1,
                "prompt_swaps": self.prompt_swaps >= 0,
            },
            self,
        )
        super().__post_init__()


@dataclass
class InferenceSettings:
    """Where and how a trained model answers: shared by ``annotate`` and ``score``."""

    device: str | None = None  # null: the GPU when there is one, else the CPU
    dtype: DType | None = None  # null: the model folder's own
    batch_size: int = 32  # items per prefix forward (halved on a CUDA out-of-memory error)

    def __post_init__(self) -> None:
        require("task", {"batch_size": self.batch_size >= 1}, self)


@dataclass
class AnnotateTaskConfig(InferenceSettings):
    name: str = "annotate"
    model_dir: str = MISSING  # a folder written by train_checklist
    chunk_size: int = 512  # items per written part (the unit of resume)
    out_dir: str | None = None  # null: <run>/annotations
    # I/N: this job does shard I of N (slurm: from the array job's ids; merge: gathers them);
    # null: one process, or each torchrun rank a shard. Values: vrexp/data/shards.py
    shard: str | None = None
    skip_bad_media: bool = False  # record unreadable files in skipped.json instead of failing
    overwrite: bool = False

    def __post_init__(self) -> None:
        require("task", {"chunk_size": self.chunk_size >= 1}, self)
        super().__post_init__()


@dataclass
class ScoreTaskConfig(InferenceSettings):
    """Score your own media with a VisionReward: a parquet, an HTML report and a W&B table.

    The reward is ``reward_dir`` (a VisionReward folder) or ``official`` (the released weighting,
    answered by the composed ``backbone``). The items are ``media`` (a file or a folder, one
    ``prompt`` for all), ``list_file`` (csv, jsonl or parquet with ``media`` and ``prompt``
    columns, media paths relative to the file's folder), or else the composed ``dataset``.
    """

    name: str = "score"
    reward_dir: str | None = None
    official: str | None = None  # a released weighting (vrexp/reward/official.py)
    media: str | None = None
    prompt: str = ""  # the prompt of every file given with task.media
    list_file: str | None = None
    allow_outside_root: bool = False  # list_file media may leave the list's folder (../, /abs)
    chunk_size: int = 256  # items per written part (the unit of resume)
    out_dir: str | None = None  # null: <run>/scores
    # I/N: this job does shard I of N (slurm: from the array job's ids; merge: gathers them);
    # null: one process, or each torchrun rank a shard. Values: vrexp/data/shards.py
    shard: str | None = None
    skip_bad_media: bool = False  # record unreadable files in skipped.json instead of failing
    overwrite: bool = False
    report: bool = True  # write report.html
    report_max_items: int = 500  # items shown one by one (the best and worst halves beyond it)
    thumbnail_size: int = 256
    log_table: bool = True  # the scores as a W&B table with the media (W&B loggers only)

    def __post_init__(self) -> None:
        if (self.reward_dir is None) == (self.official is None):
            raise ConfigValueError(
                "task=score needs exactly one reward: task.reward_dir=DIR (a VisionReward folder) "
                "or task.official=NAME (a released weighting: image, image_select or "
                f"video_select); got reward_dir={self.reward_dir!r}, official={self.official!r}"
            )
        if self.media is not None and self.list_file is not None:
            raise ConfigValueError(
                "task=score reads its items from task.media or task.list_file, not both"
            )
        require(
            "task",
            {
                "chunk_size": self.chunk_size >= 1,
                "report_max_items": self.report_max_items >= 2,
                "thumbnail_size": self.thumbnail_size >= 16,
            },
            self,
        )
        super().__post_init__()


SCORES_SUFFIXES = (".parquet", ".csv")  # what task.scores and task.export_items may be


@dataclass
class BenchmarkTaskConfig(InferenceSettings):
    """A reward on a benchmark (``dataset=<benchmark>``) under the benchmark's own protocols.

    The reward is one of ``reward_dir`` (a VisionReward folder), ``official`` (a released
    weighting answered by the composed ``backbone``) or ``scores`` (a parquet or CSV file with
    columns ``media`` and ``score``, keyed the benchmark's way: any model's scores, no model
    loaded; or a folder holding ``<dataset.name>.parquet`` or ``.csv``, so that one value serves a
    sweep over benchmarks). ``reward_name`` names the reward in tables (null: the scores file's
    or folder's name, the reward folder's name, or the official weighting's). ``export_items``
    writes the keys the benchmark needs (with prompts and media paths)
    for scoring elsewhere; alone, it is all the task does. ``protocols`` null: the benchmark's
    official protocols plus tau_star and diff for pair benchmarks. ``model_ties`` null: diff's
    own default (drop). Pick-a-Pic's tie threshold is chosen on ``validation_unique``, whose
    media are scored (or read from ``scores``) too.
    """

    name: str = "benchmark"
    reward_dir: str | None = None
    official: str | None = None  # a released weighting (vrexp/reward/official.py)
    scores: str | None = None  # a scores file (columns media, score), or a folder of them
    reward_name: str | None = None  # the reward's name in tables; null: from its source
    export_items: str | None = None  # write the benchmark's keys to this .csv / .parquet
    protocols: list[Protocol] | None = None
    model_ties: ModelTies | None = None
    num_resamples: int = 1000  # bootstrap resamples for the 95% intervals
    out_dir: str | None = None  # benchmark.json and its tables; null: the run folder
    scores_dir: str | None = None  # a model's resumable scores; null: <out_dir>/scores/<split>
    chunk_size: int = 256  # items per written part (the unit of resume)
    overwrite: bool = False

    def __post_init__(self) -> None:
        given = {
            k: v
            for k, v in (
                ("reward_dir", self.reward_dir),
                ("official", self.official),
                ("scores", self.scores),
            )
            if v is not None
        }
        if len(given) > 1 or (not given and self.export_items is None):
            raise ConfigValueError(
                "task=benchmark needs one reward: task.reward_dir=DIR (a VisionReward folder), "
                "task.official=NAME (a released weighting, with a backbone) or task.scores=FILE "
                f"(columns media, score), or task.export_items=FILE alone; got {given or 'none'}"
            )
        if self.export_items is not None and not self.export_items.lower().endswith(
            SCORES_SUFFIXES
        ):
            raise ConfigValueError(
                f"task.export_items={self.export_items!r} must be a .parquet or .csv file"
            )
        if (
            self.scores is not None
            and Path(self.scores).suffix
            and not self.scores.lower().endswith(SCORES_SUFFIXES)
        ):
            raise ConfigValueError(
                f"task.scores={self.scores!r} must be a .parquet or .csv file, or a folder of "
                "<benchmark>.parquet / .csv files"
            )
        require(
            "task",
            {"num_resamples": self.num_resamples >= 1, "chunk_size": self.chunk_size >= 1},
            self,
        )
        super().__post_init__()


@dataclass
class SGDSettings:
    """The paper's Algorithm 1: SGD epochs on the pair log-loss, negatives zeroed after each."""

    lr: float = 0.05
    batch_size: int = 64  # 1 is the paper's per-sample SGD
    max_epochs: int = 300
    tol: float = 1e-5  # stop when ||w - w_prev|| between epochs falls to this

    def __post_init__(self) -> None:
        require(
            "task.sgd",
            {
                "lr": self.lr > 0,
                "batch_size": self.batch_size >= 1,
                "max_epochs": self.max_epochs >= 1,
                "tol": self.tol >= 0,
            },
            self,
        )


@dataclass
class QuestionSubset:
    """Fit on a subset of the questions (Fig. 5): ``num_questions`` of them, chosen at random or
    as the largest weights of a fit on all questions ("after weight masking")."""

    num_questions: int | None = None
    selection: QuestionSelection = QuestionSelection.random
    seed: int = 0

    def __post_init__(self) -> None:
        require(
            "task.questions",
            {"num_questions": self.num_questions is None or self.num_questions >= 1},
            self,
        )


@dataclass
class FitWeightsTaskConfig:
    name: str = "fit_weights"
    annotations: str = MISSING  # an annotate output folder (P(yes) per item and question)
    model_dir: str | None = None  # the checklist model; when set, out_dir is a whole VisionReward
    out_dir: str | None = None  # null: <run>/reward
    encoding: Encoding = Encoding.pm1  # pm1: answers as +-1 (official code); binary: {0, 1} (paper)
    hard_answers: bool = False  # threshold P(yes) at 0.5 before weighting (official code)
    solver: Solver = Solver.exact
    l2: float = 0.0
    num_pairs: int | None = None  # regression pairs drawn from the train part (null: all)
    select_threshold: float = 0.0  # the select checklist keeps weights above this
    sgd: SGDSettings = field(default_factory=SGDSettings)
    questions: QuestionSubset = field(default_factory=QuestionSubset)

    def __post_init__(self) -> None:
        require(
            "task",
            {
                "l2": self.l2 >= 0,
                "num_pairs": self.num_pairs is None or self.num_pairs >= 1,
                "select_threshold": self.select_threshold >= 0,
            },
            self,
        )


@dataclass
class BaselineTraining(BackboneOptimSettings, TrainingBudget, ItemCacheSettings):
    """Training of the pairwise baselines: the same backbone, pairs and recipe as the weighting."""

    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup_steps: int = 20
    batch_size: int = 16  # pairs per step
    # Six passes over the main job's 800 untied regression pairs (300 steps): what the former
    # one-minute cap allowed each baseline on a quiet 2-core CPU.
    max_epochs: int | None = 6
    question: str = 'Is this a high-quality image that matches the prompt "[[prompt]]"?'

    def __post_init__(self) -> None:
        require("task.baseline", {"batch_size": self.batch_size >= 1}, self)
        super().__post_init__()


@dataclass
class EvaluateTaskConfig:
    name: str = "evaluate"
    annotations: str = MISSING
    reward_dir: str = MISSING  # fit_weights output (weights.json, checklist.yaml)
    out_dir: str | None = None  # null: <run>/evaluation
    part: Part = Part.test  # which part of the prompt partition to evaluate on
    num_resamples: int = 1000  # bootstrap resamples for the 95% intervals
    baselines: list[Baseline] = field(default_factory=lambda: list(Baseline))
    baseline: BaselineTraining = field(default_factory=BaselineTraining)
    overwrite: bool = False  # baselines' checkpoints of other settings: deleted instead of refused
    # SynthWorld only: rows for the hidden utility and the oracle's answers under the reward's
    # weighting (vrexp/modules/ceilings.py), and every method's paired difference to VisionReward
    ceilings: bool = True

    def __post_init__(self) -> None:
        require("task", {"num_resamples": self.num_resamples >= 1}, self)


@dataclass
class PipelineStages:
    train_checklist: TrainChecklistTaskConfig = field(default_factory=TrainChecklistTaskConfig)
    annotate: AnnotateTaskConfig = field(default_factory=AnnotateTaskConfig)
    fit_weights: FitWeightsTaskConfig = field(default_factory=FitWeightsTaskConfig)
    evaluate: EvaluateTaskConfig = field(default_factory=EvaluateTaskConfig)


@dataclass
class DataEfficiencySettings:
    """The main job's data-efficiency curve: after ``evaluate``, VisionReward's weighting and the
    ``bt_head`` baseline refitted on each budget's training pairs (drawn as ``fit_weights`` draws
    them) and evaluated on the same test pairs. A budget is a number of train pairs, or null for
    all of them; the budget of the main fit reuses the main evaluation. Empty: no curve."""

    budgets: list[int | None] = field(default_factory=lambda: [100, 300, 1000, None])

    def __post_init__(self) -> None:
        for index, budget in enumerate(self.budgets):
            if budget is not None and (isinstance(budget, bool) or budget < 1):
                raise ConfigValueError(
                    f"task.data_efficiency.budgets[{index}]={budget!r} is out of range: a number "
                    "of train pairs >= 1, or null for all of them"
                )
            if budget in self.budgets[:index]:
                raise ConfigValueError(
                    f"task.data_efficiency.budgets[{index}]={budget!r} is listed twice"
                )


@dataclass
class PipelineTaskConfig:
    """make_data -> train_checklist -> annotate -> fit_weights -> evaluate, in one run, and the
    data-efficiency curve."""

    name: str = "pipeline"
    # The checklist model, its annotations and the reward; a sweep points this at one shared
    # folder so its jobs train and annotate once (a finished stage with the same config is
    # reused). Null: the run folder.
    artifacts_dir: str | None = None
    stages: PipelineStages = field(default_factory=PipelineStages)
    data_efficiency: DataEfficiencySettings = field(default_factory=DataEfficiencySettings)
