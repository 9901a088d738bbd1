"""Structured-config schemas for every config group, registered in Hydra's ConfigStore.

Each YAML option in ``conf/<group>/`` lists its schema first in its defaults list (``- base_<x>``),
so a misspelt key or a value of the wrong type fails at composition with a message naming the
key. Range checks that types cannot express live in ``__post_init__``, which runs when a task turns
its node into an object with ``OmegaConf.to_object``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf


class Media(str, Enum):
    image = "image"
    video = "video"


# --------------------------------------------------------------------------- dimensions/
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


# --------------------------------------------------------------------------- dataset/
@dataclass
class UtilityConfig:
    """SynthWorld's hidden human preference (see vrexp/data/synthworld/preference.py)."""

    weights: dict[str, float] = MISSING
    interaction: float = 0.8
    noise: float = 0.15

    def __post_init__(self) -> None:
        if self.noise < 0:
            raise ValueError(f"dataset.utility.noise must be >= 0, got {self.noise}")


@dataclass
class SynthWorldConfig:
    name: str = MISSING
    kind: str = "synthworld"
    media: Media = MISSING
    num_prompts: int = 200
    renders_per_prompt: int = 2  # candidates per prompt; every pair among them is judged
    image_size: int = 64
    num_frames: int = 8
    face_rate: float = 0.4
    level_concentration: float = 0.5  # higher: more neutral levels, fewer extremes
    tie_fraction: float = 0.2
    seed: int = 0
    chunk_size: int = 128  # prompts per written part (the unit of resume)
    out_dir: str = MISSING
    utility: UtilityConfig = field(default_factory=UtilityConfig)

    def __post_init__(self) -> None:
        checks = {
            "num_prompts": self.num_prompts >= 1,
            "renders_per_prompt": self.renders_per_prompt >= 2,
            "image_size": self.image_size >= 32,
            "num_frames": self.num_frames >= 6,
            "face_rate": 0.0 <= self.face_rate <= 1.0,
            "level_concentration": self.level_concentration >= 0,
            "tie_fraction": 0.0 <= self.tie_fraction < 1.0,
            "chunk_size": self.chunk_size >= 1,
        }
        for key, ok in checks.items():
            if not ok:
                raise ValueError(f"dataset.{key}={getattr(self, key)!r} is out of range")


# --------------------------------------------------------------------------- backbone/
@dataclass
class TinyModelConfig:
    """Size of a randomly initialised backbone built from config (used when name_or_path is null)."""

    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 256
    vision_hidden_size: int = 128
    vision_layers: int = 4
    vision_heads: int = 4
    patch_size: int = 14
    temporal_patch_size: int = 2  # Qwen-VL: video frames per vision token (images are repeated)
    vocab_size: int = 1024
    seed: int = 0


@dataclass
class LoraSettings:
    enabled: bool = False
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"]
    )


@dataclass
class FrameSampling:
    """How many video frames reach the model: a fixed count, or one every 1/fps seconds."""

    num_frames: int = 8
    fps: float | None = None  # when set, sample at this rate (up to num_frames), PAPER.md §3.3
    source_fps: float = 8.0  # frame rate of stored frame sequences that carry no timing
    # Qwen-VL families take a clip as one video input of temporal patches (two frames per vision
    # token); false sends one image per frame, as for families without video input (LLaVA).
    native: bool = True


@dataclass
class BackboneConfig:
    name: str = MISSING
    family: str = MISSING  # qwen2_vl | qwen2_5_vl | llava
    name_or_path: str | None = None  # hub id or local folder; null builds a tiny random model
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)
    dtype: str = "float32"
    image_size: int = 224  # media are resized to image_size x image_size pixels
    frames: FrameSampling = field(default_factory=FrameSampling)
    lora: LoraSettings = field(default_factory=LoraSettings)
    trust_remote_code: bool = False
    local_files_only: bool = True  # never reach the network unless the user allows it
    prompt_template: str = "{media}"  # the cached prefix; {media} is the family's media tokens
    question_template: str = "{question} Answer:"
    yes_tokens: list[str] = field(default_factory=lambda: [" yes"])
    no_tokens: list[str] = field(default_factory=lambda: [" no"])
    question_batch_size: int = 256  # (item, question) suffixes per forward at inference

    def __post_init__(self) -> None:
        if self.family not in ("qwen2_vl", "qwen2_5_vl", "llava"):
            raise ValueError(
                f"backbone.family={self.family!r}; expected qwen2_vl, qwen2_5_vl or llava"
            )
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(
                f"backbone.dtype={self.dtype!r}; expected float32, bfloat16 or float16"
            )
        if "{media}" not in self.prompt_template or "{question}" not in self.question_template:
            raise ValueError(
                "backbone.prompt_template needs {media}; question_template needs {question}"
            )


@dataclass
class MediaFolderConfig:
    """A user's media: ``root`` holds the files and a prompts file with ``media`` and ``prompt``."""

    name: str = "media_folder"
    kind: str = "folder"
    media: Media = Media.image
    root: str = MISSING
    prompts_file: str = "prompts.csv"


# --------------------------------------------------------------------------- generator/
@dataclass
class TinyGeneratorConfig:
    """Size of a randomly initialised generator built from config (used when name_or_path is null)."""

    block_out_channels: list[int] = field(default_factory=lambda: [64, 128])  # UNet
    layers_per_block: int = 1
    attention_head_dim: int = 8
    norm_num_groups: int = 32
    num_layers: int = 2  # CogVideoX transformer
    num_heads: int = 4
    head_dim: int = 16
    time_embed_dim: int = 32
    patch_size: int = 2
    text_hidden_size: int = 64
    text_layers: int = 2
    text_heads: int = 4
    max_text_length: int = 16
    vocab_size: int = 1024
    seed: int = 0


@dataclass
class GeneratorLora:
    """LoRA on the denoiser (peft via diffusers' add_adapter); the DPO reference is the base
    with the adapters disabled."""

    enabled: bool = False
    r: int = 8
    alpha: int = 8
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["to_q", "to_k", "to_v", "to_out.0"])


@dataclass
class GeneratorConfig:
    name: str = MISSING
    family: str = MISSING  # sd | sdxl | cogvideox
    media: Media = MISSING
    name_or_path: str | None = None  # hub id or local folder; null builds a tiny random model
    variant: str | None = None  # e.g. fp16 weight files on the hub
    tiny: TinyGeneratorConfig = field(default_factory=TinyGeneratorConfig)
    dtype: str = "float32"
    image_size: int = 64
    num_frames: int = 8
    space_to_depth: int = 4  # tiny models' lossless latent: f x f pixel blocks -> channels
    prediction_type: str = "epsilon"  # tiny models: epsilon | v_prediction | flow
    num_train_timesteps: int = 1000
    num_inference_steps: int = 20
    guidance_scale: float = 3.0  # classifier-free guidance at sampling (1 turns it off)
    local_files_only: bool = True  # never reach the network unless the user allows it
    lora: GeneratorLora = field(default_factory=GeneratorLora)

    def __post_init__(self) -> None:
        if self.family not in ("sd", "sdxl", "cogvideox"):
            raise ValueError(f"generator.family={self.family!r}; expected sd, sdxl or cogvideox")
        if self.prediction_type not in ("epsilon", "v_prediction", "flow"):
            raise ValueError(
                f"generator.prediction_type={self.prediction_type!r}; expected epsilon, "
                "v_prediction or flow"
            )
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"generator.dtype={self.dtype!r}")
        if self.image_size % self.space_to_depth:
            raise ValueError(
                f"generator.image_size={self.image_size} must be divisible by "
                f"space_to_depth={self.space_to_depth}"
            )


# --------------------------------------------------------------------------- task/
@dataclass
class MakeDataTaskConfig:
    name: str = "make_data"
    overwrite: bool = False  # re-render a split whose manifest differs instead of failing
    print_summary: bool = True


@dataclass
class TrainChecklistTaskConfig:
    name: str = "train_checklist"
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 50
    vision_lr_scale: float = 0.1  # the vision tower's lr is lr times this (see ChecklistModule)
    batch_size: int = 16  # items per step; each brings all of its drawn questions
    balanced: bool = True  # equal yes/no per question each epoch (PAPER.md §3.2)
    questions_per_item: int | None = None  # cap on an item's questions per step (null: all drawn)
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    max_epochs: int | None = None  # when set, overrides trainer.max_epochs
    max_steps: int = -1  # when not -1, overrides trainer.max_steps
    max_time: str | None = None  # "DD:HH:MM:SS"; when set, overrides trainer.max_time
    save_dir: str = MISSING  # the trained checklist model, as an HF folder


@dataclass
class AnnotateTaskConfig:
    name: str = "annotate"
    model_dir: str = MISSING  # a folder written by train_checklist
    batch_size: int = 32  # items per prefix forward
    chunk_size: int = 512  # items per written part (the unit of resume)
    out_dir: str = MISSING
    skip_bad_media: bool = False  # record unreadable files in skipped.json instead of failing
    overwrite: bool = False


@dataclass
class SGDSettings:
    """The paper's Algorithm 1: SGD epochs on the pair log-loss, negatives zeroed after each."""

    lr: float = 0.05
    batch_size: int = 64  # 1 is the paper's per-sample SGD
    max_epochs: int = 300
    tol: float = 1e-5  # stop when ||w - w_prev|| between epochs falls to this


@dataclass
class QuestionSubset:
    """Fit on a subset of the questions (Fig. 5): ``num_questions`` of them, chosen at random or
    as the largest weights of a fit on all questions ("after weight masking")."""

    num_questions: int | None = None
    selection: str = "random"  # random | top_weight
    seed: int = 0

    def __post_init__(self) -> None:
        if self.selection not in ("random", "top_weight"):
            raise ValueError(f"selection must be 'random' or 'top_weight', got {self.selection!r}")


@dataclass
class FitWeightsTaskConfig:
    name: str = "fit_weights"
    annotations: str = MISSING  # an annotate output folder (P(yes) per item and question)
    model_dir: str | None = None  # the checklist model; when set, out_dir is a whole VisionReward
    out_dir: str = MISSING
    encoding: str = "pm1"  # pm1: answers as +-1 (official code); binary: {0, 1} (paper)
    hard_answers: bool = False  # threshold P(yes) at 0.5 before weighting (official code)
    solver: str = "exact"  # exact: bounded L-BFGS (scipy); sgd: Algorithm 1 as a WeightModule
    l2: float = 0.0
    num_pairs: int | None = None  # regression pairs drawn from the train part (null: all)
    val_fraction: float = 0.1  # the prompt partition; must match train_checklist's
    test_fraction: float = 0.1
    select_threshold: float = 0.0  # the select checklist keeps weights above this
    sgd: SGDSettings = field(default_factory=SGDSettings)
    questions: QuestionSubset = field(default_factory=QuestionSubset)

    def __post_init__(self) -> None:
        if self.encoding not in ("pm1", "binary"):
            raise ValueError(f"encoding must be 'pm1' or 'binary', got {self.encoding!r}")
        if self.solver not in ("exact", "sgd"):
            raise ValueError(f"solver must be 'exact' or 'sgd', got {self.solver!r}")


@dataclass
class BaselineTraining:
    """Training of the pairwise baselines: the same backbone and pairs as the weighting."""

    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup_steps: int = 20
    vision_lr_scale: float = 0.1  # as in train_checklist: same recipe for every method
    batch_size: int = 16  # pairs per step
    max_epochs: int = 20
    max_steps: int = -1  # when not -1, a step budget on top of max_epochs
    max_time: str | None = "00:00:01:00"
    question: str = 'Is this a high-quality image that matches the prompt "[[prompt]]"?'


@dataclass
class EvaluateTaskConfig:
    name: str = "evaluate"
    annotations: str = MISSING
    reward_dir: str = MISSING  # fit_weights output (weights.json, checklist.yaml)
    out_dir: str = MISSING
    part: str = "test"  # which prompt part's pairs to evaluate on
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    num_resamples: int = 1000  # bootstrap resamples for the 95% intervals
    # bt_head: scalar Bradley-Terry head; generic_question: one generic yes/no question trained
    # on the pairs; alignment: the alignment questions alone, weighted on the same pairs
    baselines: list[str] = field(
        default_factory=lambda: ["bt_head", "generic_question", "alignment"]
    )
    baseline: BaselineTraining = field(default_factory=BaselineTraining)

    def __post_init__(self) -> None:
        known = {"bt_head", "generic_question", "alignment"}
        unknown = set(self.baselines) - known
        if unknown:
            raise ValueError(f"unknown baselines {sorted(unknown)}; known: {sorted(known)}")
        if self.part not in ("train", "val", "test"):
            raise ValueError(f"part must be train, val or test, got {self.part!r}")


@dataclass
class PipelineStages:
    train_checklist: TrainChecklistTaskConfig = field(default_factory=TrainChecklistTaskConfig)
    annotate: AnnotateTaskConfig = field(default_factory=AnnotateTaskConfig)
    fit_weights: FitWeightsTaskConfig = field(default_factory=FitWeightsTaskConfig)
    evaluate: EvaluateTaskConfig = field(default_factory=EvaluateTaskConfig)


@dataclass
class PipelineTaskConfig:
    """make_data -> train_checklist -> annotate -> fit_weights -> evaluate, in one run."""

    name: str = "pipeline"
    # The checklist model and its annotations; a sweep points this at one shared folder so its
    # jobs train and annotate once (a finished stage with the same config is reused).
    artifacts_dir: str = MISSING
    stages: PipelineStages = field(default_factory=PipelineStages)


# --------------------------------------------------------------------------- dpo/
@dataclass
class DPOConfig:
    """How DPO pairs are chosen among K scored candidates per prompt, and the DPO strength."""

    name: str = MISSING
    rule: str = "mpo"  # total: standard DPO on the total score; mpo: plus dominance
    granularity: str = "dimension"  # dominance over dimension | sub_dimension | question scores
    threshold: float = 0.0  # minimum total-score gap (in reward units)
    num_pairs: int | None = None  # pair budget: a seeded random subset when more pairs qualify
    beta: float = 500.0
    sft_weight: float = 0.0  # adds sft_weight x the winners' denoising loss
    seed: int = 0

    def __post_init__(self) -> None:
        if self.rule not in ("total", "mpo"):
            raise ValueError(f"dpo.rule={self.rule!r}; expected total or mpo")
        if self.granularity not in ("dimension", "sub_dimension", "question"):
            raise ValueError(
                f"dpo.granularity={self.granularity!r}; expected dimension, sub_dimension or question"
            )
        if self.threshold < 0 or self.beta <= 0:
            raise ValueError("dpo.threshold must be >= 0 and dpo.beta > 0")


# --------------------------------------------------------------------------- generator tasks
@dataclass
class TrainGeneratorTaskConfig:
    """Pretrain a tiny generator (generator=...) on the dataset's media and prompts."""

    name: str = "train_generator"
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 50
    batch_size: int = 32
    cond_dropout: float = (
        0.1  # prompts dropped so classifier-free guidance has an unconditional model
    )
    train_text_encoder: bool = True
    val_fraction: float = 0.05
    max_steps: int = 600
    max_time: str | None = None  # "DD:HH:MM:SS"; a wall-time cap on top of max_steps
    num_preview: int = 8  # samples saved (and logged) at the end
    save_dir: str = MISSING


@dataclass
class PromptSource:
    """Prompts for sampling or evaluation: a file (one per line, or a csv/jsonl/parquet ``prompt``
    column), or else ``num_prompts`` drawn from the SynthWorld grammar with ``seed``."""

    file: str | None = None
    num_prompts: int = 200
    seed: int = 1


@dataclass
class SampleTaskConfig:
    """K candidates per prompt from a generator, scored with a VisionReward folder."""

    name: str = "sample"
    generator_dir: str | None = None  # a generator folder; null builds `generator` (a checkpoint)
    reward_dir: str = MISSING
    prompts: PromptSource = field(default_factory=PromptSource)
    candidates: int = 8
    seed: int = 0  # candidate k of prompt p uses noise seed (seed, p, k)
    batch_size: int = 64  # media per generate call
    chunk_size: int = 32  # prompts per written part (the unit of resume)
    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    out_dir: str = MISSING
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.candidates < 2:
            raise ValueError(f"task.candidates={self.candidates}; pairs need at least 2")


@dataclass
class BuildPairsTaskConfig:
    name: str = "build_pairs"
    samples: str = MISSING  # a sample output folder
    out_dir: str = MISSING


@dataclass
class TrainDPOTaskConfig:
    name: str = "train_dpo"
    generator_dir: str | None = (
        MISSING  # the base generator; null builds `generator` (a checkpoint)
    )
    pairs: str = MISSING  # a build_pairs output folder
    reward_dir: str | None = None  # when set, periodic samples are scored (Fig. 11 curves)
    reference: str = "lora"  # lora: base with adapters disabled; copy: a frozen copy
    lr: float = 1e-4
    weight_decay: float = 0.0
    warmup_steps: int = 10
    batch_size: int = 8  # pairs per step
    max_steps: int = 300
    max_time: str | None = None
    curve_every_n_steps: int = 50
    curve_prompts: PromptSource = field(
        default_factory=lambda: PromptSource(num_prompts=32, seed=3)
    )
    save_dir: str = MISSING

    def __post_init__(self) -> None:
        if self.reference not in ("lora", "copy"):
            raise ValueError(f"task.reference={self.reference!r}; expected lora or copy")


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
    out_dir: str = MISSING


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
    artifacts_dir: str = MISSING
    # A pretrained base generator folder (e.g. one pretrained with trainer=gpu); null pretrains one
    # with the train_generator stage.
    base_dir: str | None = None
    # The job's result rows (results.json, for sweep tables): eval (original and tuned generator),
    # pairs (stop after build_pairs: the pairs' dominance statistics), curve (stop after train_dpo:
    # the reward curve of its validation samples).
    report: str = "eval"
    stages: OptimizeGeneratorStages = field(default_factory=OptimizeGeneratorStages)

    def __post_init__(self) -> None:
        if self.report not in ("eval", "pairs", "curve"):
            raise ValueError(f"task.report={self.report!r}; expected eval, pairs or curve")


# --------------------------------------------------------------------------- logger/
@dataclass
class WandbLoggerConfig:
    _target_: str = "vrexp.tracking.loggers.QuietWandbLogger"
    project: str = "vrexp"
    entity: str | None = None
    offline: bool = True  # online only when the user sets logger.offline=false
    save_dir: str = MISSING
    group: str | None = None  # default: the multirun sweep, so a sweep's jobs share a group
    name: str | None = None  # default: task plus the job's overrides
    job_type: str | None = None
    tags: list[str] = field(default_factory=list)
    log_model: bool = False


@dataclass
class CSVLoggerConfig:
    _target_: str = "pytorch_lightning.loggers.CSVLogger"
    save_dir: str = MISSING
    name: str = "csv"
    version: str | None = None


# --------------------------------------------------------------------------- trainer/
@dataclass
class TrainerConfig:
    _target_: str = "pytorch_lightning.Trainer"
    accelerator: str = "cpu"
    devices: Any = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: Any = "32-true"
    max_epochs: int | None = 10
    max_steps: int = -1
    min_epochs: int | None = None
    max_time: str | None = None
    check_val_every_n_epoch: int | None = 1
    val_check_interval: Any = None
    log_every_n_steps: int = 10
    limit_train_batches: Any = None
    limit_val_batches: Any = None
    num_sanity_val_steps: int | None = None
    accumulate_grad_batches: int = 1
    gradient_clip_val: float | None = None
    deterministic: Any = None
    benchmark: bool | None = None
    fast_dev_run: Any = False
    enable_checkpointing: bool = True
    enable_progress_bar: bool = True
    enable_model_summary: bool = True
    default_root_dir: str | None = None
    sync_batchnorm: bool = False


# --------------------------------------------------------------------------- paths/ and root
@dataclass
class PathsConfig:
    root_dir: str = "."
    data_dir: str = "${paths.root_dir}/data"
    log_dir: str = "${paths.root_dir}/logs"
    output_dir: str = "${hydra:runtime.output_dir}"


@dataclass
class VrexpConfig:
    task: Any = MISSING
    dataset: Any = MISSING
    dimensions: Any = MISSING
    backbone: Any = MISSING
    generator: Any = None
    dpo: Any = None
    paths: PathsConfig = field(default_factory=PathsConfig)
    logger: Any = None
    trainer: Any = MISSING
    seed: int = 0


def by_media(image: Any, video: Any, *, _root_: DictConfig) -> Any:
    """``${by_media:IMAGE,VIDEO}``: the value for the media of the composed ``dataset``."""
    media = OmegaConf.select(_root_, "dataset.media", default=Media.image)
    return video if Media(media) is Media.video else image


def register_configs() -> None:
    """Store the schemas under the names that the YAML defaults lists refer to, and register the
    ``by_media`` resolver."""
    if not OmegaConf.has_resolver("by_media"):
        OmegaConf.register_new_resolver("by_media", by_media)
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=VrexpConfig)
    cs.store(group="paths", name="base_paths", node=PathsConfig)
    cs.store(group="dimensions", name="base_checklist", node=ChecklistConfig)
    cs.store(group="dataset", name="base_synthworld", node=SynthWorldConfig)
    cs.store(group="dataset", name="base_media_folder", node=MediaFolderConfig)
    cs.store(group="task", name="base_make_data", node=MakeDataTaskConfig)
    cs.store(group="task", name="base_train_checklist", node=TrainChecklistTaskConfig)
    cs.store(group="task", name="base_annotate", node=AnnotateTaskConfig)
    cs.store(group="task", name="base_fit_weights", node=FitWeightsTaskConfig)
    cs.store(group="task", name="base_evaluate", node=EvaluateTaskConfig)
    cs.store(group="task", name="base_pipeline", node=PipelineTaskConfig)
    cs.store(group="task", name="base_train_generator", node=TrainGeneratorTaskConfig)
    cs.store(group="task", name="base_sample", node=SampleTaskConfig)
    cs.store(group="task", name="base_build_pairs", node=BuildPairsTaskConfig)
    cs.store(group="task", name="base_train_dpo", node=TrainDPOTaskConfig)
    cs.store(group="task", name="base_eval_generator", node=EvalGeneratorTaskConfig)
    cs.store(group="task", name="base_optimize_generator", node=OptimizeGeneratorTaskConfig)
    cs.store(group="dpo", name="base_dpo", node=DPOConfig)
    cs.store(group="logger", name="base_wandb", node=WandbLoggerConfig)
    cs.store(group="logger", name="base_csv", node=CSVLoggerConfig)
    cs.store(group="trainer", name="base_trainer", node=TrainerConfig)
    cs.store(group="backbone", name="base_backbone", node=BackboneConfig)
    cs.store(group="generator", name="base_generator", node=GeneratorConfig)


def check_known_keys(cfg: Any, where: str = "") -> None:
    """Raise on keys that a schema does not declare.

    Composition already rejects ``group.key=value`` for unknown keys, but Hydra's ``+group.key=value``
    opens the struct flag and would let a typo through silently.
    """
    from dataclasses import fields, is_dataclass

    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        schema = OmegaConf.get_type(cfg)
        if schema is not None and is_dataclass(schema):
            known = {f.name for f in fields(schema)}
            unknown = sorted(set(cfg.keys()) - known)
            if unknown:
                raise ValueError(
                    f"unknown config key '{where}{unknown[0]}' ({schema.__name__} has no field "
                    f"{unknown[0]!r}; known: {sorted(known)})"
                )
        for key in cfg:
            if key == "hydra":
                continue
            child = cfg._get_node(key)
            if isinstance(child, (DictConfig, ListConfig)):
                check_known_keys(child, f"{where}{key}.")
    elif isinstance(cfg, ListConfig):
        for i, child in enumerate(cfg._content or []):
            if isinstance(child, (DictConfig, ListConfig)):
                check_known_keys(child, f"{where}{i}.")
