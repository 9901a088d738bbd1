"""Every list of valid values, as one ``Enum`` each.

The structured configs type their fields with these, so a bad value fails at composition with a
message naming the key and the allowed values; the registries (backbone and generator families,
noise schedules, pair rules, reward encodings, baselines) key on the same members. They are
``str`` enums: a member equals its value (``Solver.sgd == "sgd"``), so YAML and code read alike.
"""

from __future__ import annotations

from enum import Enum


class ChoiceError(ValueError):
    """A value that is none of a choice's members; the message names the key and lists them."""


class Choice(str, Enum):
    """A ``str`` enum whose ``str()`` is its value (so f-strings and file names read naturally)."""

    def __str__(self) -> str:
        return self.value

    @classmethod
    def values(cls) -> list[str]:
        return [m.value for m in cls]

    @classmethod
    def of(cls, value: object, key: str) -> Choice:
        """The member ``value`` names; else raise naming ``key`` and the valid values (for
        values that reach code without passing through a typed config: Python calls, files)."""
        try:
            return cls(value)
        except ValueError:
            raise ChoiceError(
                f"{key}={value!r} is not a valid choice; expected one of {cls.values()}"
            ) from None


class Media(Choice):
    image = "image"
    video = "video"


class FrameSelection(Choice):
    """Which video frames reach the model (docs/media.md §3): ``num_frames`` evenly spaced in
    time, one every ``1/fps`` seconds, or the released VisionReward-Video scorer's rule (the frame
    nearest each whole second, at most 24)."""

    count = "count"
    fps = "fps"
    official = "official"


class PatchInit(Choice):
    """How a tiny backbone's patch embedding starts: the transformers default (random) or the DCT
    basis (vrexp/backbones/patch_init.py)."""

    random = "random"
    dct = "dct"


class VideoFormat(Choice):
    """How generated videos are written: lossless APNG (exact pixels, for the pixel oracle and
    training) or H.264 MP4 (small, plays everywhere; lossy)."""

    apng = "apng"
    mp4 = "mp4"

    @property
    def suffix(self) -> str:
        """The file suffix that selects this format in ``vrexp.media.save_media``."""
        return {"apng": ".png", "mp4": ".mp4"}[self.value]


class DType(Choice):
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


class BackboneFamily(Choice):
    qwen2_vl = "qwen2_vl"
    qwen2_5_vl = "qwen2_5_vl"
    llava = "llava"


class GeneratorFamily(Choice):
    sd = "sd"
    sdxl = "sdxl"
    cogvideox = "cogvideox"


class PredictionType(Choice):
    """What a tiny generator's denoiser predicts (a checkpoint's scheduler decides for real ones)."""

    epsilon = "epsilon"
    v_prediction = "v_prediction"
    flow = "flow"


class Encoding(Choice):
    """How an answer in [0, 1] becomes a reward feature: ``2a - 1`` (official code) or ``a``."""

    pm1 = "pm1"
    binary = "binary"


class Solver(Choice):
    """exact: bounded L-BFGS (scipy); sgd: the paper's Algorithm 1 as a Lightning run."""

    exact = "exact"
    sgd = "sgd"


class QuestionSelection(Choice):
    """How Fig. 5 picks k questions: at random, or the k largest weights of a full fit."""

    random = "random"
    top_weight = "top_weight"


class Baseline(Choice):
    """Rewards that ``evaluate`` compares VisionReward with, on the same backbone and pairs."""

    bt_head = "bt_head"  # a scalar Bradley-Terry head (the ImageReward / VideoScore kind)
    generic_question = "generic_question"  # one generic yes/no question trained on the pairs
    alignment = "alignment"  # the alignment questions alone, weighted on the same pairs


class Part(Choice):
    """The parts of a dataset's prompt partition."""

    train = "train"
    val = "val"
    test = "test"


class PairRule(Choice):
    """total: a total-score gap (standard DPO); mpo: plus dominance on every score (MPO)."""

    total = "total"
    mpo = "mpo"


class Granularity(Choice):
    """The scores over which MPO requires dominance."""

    dimension = "dimension"
    sub_dimension = "sub_dimension"
    question = "question"


class Reference(Choice):
    """The DPO reference: the base with LoRA adapters disabled, or a frozen copy."""

    lora = "lora"
    copy = "copy"


class GeneratorReport(Choice):
    """What an ``optimize_generator`` job reports: the evaluation, the pairs' statistics (stops
    after build_pairs) or the reward curve of DPO's validation samples (stops after train_dpo)."""

    eval = "eval"
    pairs = "pairs"
    curve = "curve"


class DatasetKind(Choice):
    synthworld = "synthworld"
    folder = "folder"
    benchmark = "benchmark"  # a local snapshot of a public evaluation benchmark
    visionrewarddb = "visionrewarddb"  # a local snapshot of VisionRewardDB (training data)


class VisionRewardDBName(Choice):
    """The VisionRewardDB training datasets (vrexp/data/visionrewarddb.py, docs/benchmarks.md §7)."""

    visionrewarddb_image = "visionrewarddb_image"
    visionrewarddb_video = "visionrewarddb_video"


class BenchmarkName(Choice):
    """The evaluation benchmarks that ``dataset=<name>`` reads from a local snapshot
    (vrexp/data/benchmarks/, docs/benchmarks.md §5)."""

    hpdv2_test = "hpdv2_test"
    imagerewarddb_test = "imagerewarddb_test"
    pickapic_v1 = "pickapic_v1"
    pickapic_v2 = "pickapic_v2"
    genai_bench_image = "genai_bench_image"
    genai_bench_video = "genai_bench_video"
    videogen_rewardbench = "videogen_rewardbench"
    monetbench_video = "monetbench_video"


class InitFailure(Choice):
    """What a W&B run that cannot start online does (``logger.on_init_failure``): log offline
    instead, with a warning (upload later with ``wandb sync``), or stop the job with the reason."""

    offline = "offline"
    fail = "fail"


class ModelTies(Choice):
    """How diff scores a pair that humans decided but the reward ties exactly (``delta == 0``).

    ``drop`` leaves it out, ``C / (C + D)`` (the paper's diff**); ``half`` counts it half correct,
    the expected accuracy of a coin-flip tie-break (so a constant reward lands at chance, not at
    NaN); ``wrong`` counts it wrong, as the official VideoAlign and ImageReward evaluation code
    does.
    """

    drop = "drop"
    half = "half"
    wrong = "wrong"


class Protocol(Choice):
    """The benchmark protocols' names, fixed so that results stay comparable (docs/benchmarks.md;
    each one's rule is in :mod:`vrexp.metrics.protocols`)."""

    tau_star = "tau_star"
    tau_star_videoalign = "tau_star_videoalign"
    diff = "diff"
    without_ties = "without_ties"
    hpdv2 = "hpdv2"
    imagereward = "imagereward"
    pickapic = "pickapic"


class ShardingStrategy(Choice):
    """How ``trainer=fsdp`` shards (torch's ``ShardingStrategy``): parameters, gradients and
    optimiser state across all ranks; only gradients and optimiser state; full sharding inside a
    node and replication across nodes; or none (DDP through FSDP)."""

    FULL_SHARD = "FULL_SHARD"
    SHARD_GRAD_OP = "SHARD_GRAD_OP"
    HYBRID_SHARD = "HYBRID_SHARD"
    NO_SHARD = "NO_SHARD"


class StateDictType(Choice):
    """How ``trainer=fsdp`` writes checkpoints: one consolidated file (as under DDP) or a folder of
    per-rank shards (faster for the largest models, read back only by FSDP)."""

    full = "full"
    sharded = "sharded"
