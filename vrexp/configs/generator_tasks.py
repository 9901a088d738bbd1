"""Schemas of the generator-side tasks: train_generator, sample, build_pairs, train_dpo,
eval_generator and the ``optimize_generator`` chain."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

from vrexp.configs.checks import require
from vrexp.configs.choices import GeneratorReport, Reference, VideoFormat
from vrexp.configs.tasks import PipelineTaskConfig
from vrexp.configs.training import OptimSettings, TrainingBudget


@dataclass
class TrainGeneratorTaskConfig(OptimSettings, TrainingBudget):
    """Pretrain a tiny generator (generator=...) on the dataset's media and prompts."""

    name: str = "train_generator"
    batch_size: int = 16
    cond_dropout: float = (
        0.1  # prompts dropped so classifier-free guidance has an unconditional model
    )
    train_text_encoder: bool = True
    val_fraction: float = 0.05  # renders held out for the validation loss
    max_steps: int = 500
    num_preview: int = 8  # samples saved (and logged) at the end
    save_dir: str | None = None  # null: <run>/generator
    overwrite: bool = False  # checkpoints of other settings: deleted instead of refused

    def __post_init__(self) -> None:
        require(
            "task",
            {
                "batch_size": self.batch_size >= 1,
                "cond_dropout": 0.0 <= self.cond_dropout < 1.0,
                "val_fraction": 0.0 <= self.val_fraction < 1.0,
                "num_preview": self.num_preview >= 0,
            },
            self,
        )
        super().__post_init__()


@dataclass
class PromptSource:
    """Prompts for sampling or evaluation: a file (one per line, or a csv/jsonl/parquet ``prompt``
    column), or else ``num_prompts`` drawn from the SynthWorld grammar with ``seed``."""

    file: str | None = None
    num_prompts: int = 300
    seed: int = 1

    def __post_init__(self) -> None:
        require("task.prompts", {"num_prompts": self.num_prompts >= 1}, self)


@dataclass
class SampleTaskConfig:
    """K candidates per prompt from a generator, scored with a VisionReward folder."""

    name: str = "sample"
    generator_dir: str | None = (
        MISSING  # a generator folder; null builds `generator` (a checkpoint)
    )
    reward_dir: str = MISSING
    prompts: PromptSource = field(default_factory=PromptSource)
    candidates: int = 8
    seed: int = 0  # candidate k of prompt p uses noise seed (seed, p, k)
    batch_size: int = 64  # media per generate call
    chunk_size: int = 32  # prompts per written part (the unit of resume)
    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    # How videos are written: apng keeps exact pixels (what build_pairs / train_dpo train on);
    # mp4 (H.264) is for people and players. Scores and the oracle use the generated pixels.
    video_format: VideoFormat = VideoFormat.apng
    out_dir: str | None = None  # null: <run>/samples
    # I/N: this job does shard I of N (slurm: from the array job's ids; merge: gathers them);
    # null: one process, or each torchrun rank a shard. Values: vrexp/data/shards.py
    shard: str | None = None
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.candidates < 2:
            require("task", {"candidates (pairs need at least 2)": False}, self)
        require(
            "task",
            {
                "batch_size": self.batch_size >= 1,
                "chunk_size": self.chunk_size >= 1,
                "num_inference_steps": self.num_inference_steps is None
                or self.num_inference_steps >= 1,
                "guidance_scale": self.guidance_scale is None or self.guidance_scale >= 0,
            },
            self,
        )


@dataclass
class BuildPairsTaskConfig:
    name: str = "build_pairs"
    samples: str = MISSING  # a sample output folder
    out_dir: str | None = None  # null: <run>/pairs


@dataclass
class TrainDPOTaskConfig(OptimSettings, TrainingBudget):
    name: str = "train_dpo"
    generator_dir: str | None = (
        MISSING  # the base generator; null builds `generator` (a checkpoint)
    )
    pairs: str = MISSING  # a build_pairs output folder
    reward_dir: str | None = None  # when set, periodic samples are scored (Fig. 11 curves)
    reference: Reference = Reference.lora
    warmup_steps: int = 10
    batch_size: int = 8  # pairs per step
    max_steps: int = 200  # a step budget, so variants compare at equal steps on any machine
    curve_every_n_steps: int = 50
    curve_prompts: PromptSource = field(
        default_factory=lambda: PromptSource(num_prompts=32, seed=3)
    )
    save_dir: str | None = None  # null: <run>/generator
    overwrite: bool = False  # checkpoints of other settings: deleted instead of refused

    def __post_init__(self) -> None:
        require(
            "task",
            {
                "batch_size": self.batch_size >= 1,
                "curve_every_n_steps": self.curve_every_n_steps >= 1,
            },
            self,
        )
        super().__post_init__()


@dataclass
class EvalGeneratorTaskConfig:
    """Per-dimension mean reward of each generator, and its oracle-utility win rate over the base."""

    name: str = "eval_generator"
    base_dir: str | None = MISSING  # null builds `generator` (a checkpoint)
    generator_dirs: dict[str, str] = field(default_factory=dict)  # name -> tuned generator folder
    reward_dir: str = MISSING
    prompts: PromptSource = field(default_factory=lambda: PromptSource(num_prompts=200, seed=2))
    samples_per_prompt: int = 2
    seed: int = 1000
    batch_size: int = 64
    num_resamples: int = 1000  # bootstrap resamples (over prompts) for the win-rate intervals
    out_dir: str | None = None  # null: <run>/eval

    def __post_init__(self) -> None:
        require(
            "task",
            {
                "samples_per_prompt": self.samples_per_prompt >= 1,
                "batch_size": self.batch_size >= 1,
                "num_resamples": self.num_resamples >= 1,
            },
            self,
        )


@dataclass
class OptimizeGeneratorStages:
    reward: PipelineTaskConfig = field(default_factory=PipelineTaskConfig)
    train_generator: TrainGeneratorTaskConfig = field(default_factory=TrainGeneratorTaskConfig)
    sample: SampleTaskConfig = field(default_factory=SampleTaskConfig)
    build_pairs: BuildPairsTaskConfig = field(default_factory=BuildPairsTaskConfig)
    train_dpo: TrainDPOTaskConfig = field(default_factory=TrainDPOTaskConfig)
    eval_generator: EvalGeneratorTaskConfig = field(default_factory=EvalGeneratorTaskConfig)


@dataclass
class OptimizeGeneratorTaskConfig:
    """reward (the scorer pipeline) -> train_generator -> sample -> build_pairs -> train_dpo ->
    eval_generator. The reward, base generator and scored samples live in ``artifacts_dir`` and are
    reused by every job of a sweep over ``dpo``."""

    name: str = "optimize_generator"
    artifacts_dir: str = "${shared_artifacts:}"  # one folder per split and backbone
    # A pretrained base generator folder (e.g. one pretrained with trainer=gpu); null pretrains one
    # with the train_generator stage.
    base_dir: str | None = None
    report: GeneratorReport = GeneratorReport.eval
    stages: OptimizeGeneratorStages = field(default_factory=OptimizeGeneratorStages)
