"""Schema of ``backbone/``: the checklist VLM (a family, tiny or real weights, frame sampling)."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

from vrexp.configs.checks import ConfigValueError, require
from vrexp.configs.choices import BackboneFamily, DType, FrameSelection, PatchInit


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
    # random: the transformers init; dct: the DCT basis, an inductive bias for a vision tower
    # trained from scratch (vrexp/backbones/patch_init.py)
    patch_init: PatchInit = PatchInit.random
    vocab_size: int = 1024
    seed: int = 0

    def __post_init__(self) -> None:
        require(
            "backbone.tiny",
            {
                "hidden_size": self.hidden_size >= 1,
                "num_layers": self.num_layers >= 1,
                "num_heads": self.num_heads >= 1,
                "hidden_size (a multiple of num_heads)": self.hidden_size % max(self.num_heads, 1)
                == 0,
                "num_kv_heads": 1 <= self.num_kv_heads <= self.num_heads,
                "intermediate_size": self.intermediate_size >= 1,
                "vision_hidden_size": self.vision_hidden_size >= 1,
                "vision_layers": self.vision_layers >= 1,
                "vision_heads": self.vision_heads >= 1,
                "patch_size": self.patch_size >= 1,
                "temporal_patch_size": self.temporal_patch_size >= 1,
                "vocab_size": self.vocab_size >= 16,
            },
            self,
        )


@dataclass
class LoraSettings:
    enabled: bool = False
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"]
    )

    def __post_init__(self) -> None:
        require(
            "backbone.lora",
            {
                "r": self.r >= 1,
                "alpha": self.alpha > 0,
                "dropout": 0.0 <= self.dropout < 1.0,
                "target_modules": len(self.target_modules) >= 1,
            },
            self,
        )


# Frames per second of videos that carry no timing: SynthWorld renders and generator samples
# (arrays, and the APNGs written from them). CogVideoX also makes 8 fps.
UNTIMED_FPS = 8.0


@dataclass
class FrameSampling:
    """Which video frames reach the model (docs/media.md §3): ``select`` names the rule."""

    # count: exactly this many (all frames of a shorter clip); fps and official: at most this many
    num_frames: int = 8
    select: FrameSelection = FrameSelection.count
    fps: float | None = None  # select=fps: one frame every 1/fps seconds (set only then)
    source_fps: float = UNTIMED_FPS  # the frame rate assumed for arrays that carry no timing
    # Qwen-VL families take a clip as one video input of temporal patches (two frames per vision
    # token); false sends one image per frame, as for families without video input (LLaVA).
    native: bool = True

    def __post_init__(self) -> None:
        by_rate = self.select == FrameSelection.fps
        require(
            "backbone.frames",
            {
                "num_frames": self.num_frames >= 1,
                "fps (set it when select=fps, and only then)": (self.fps is not None) == by_rate,
                "fps": self.fps is None or self.fps > 0,
                "source_fps": self.source_fps > 0,
            },
            self,
        )


@dataclass
class BackboneConfig:
    name: str = MISSING
    family: BackboneFamily = MISSING
    name_or_path: str | None = None  # hub id or local folder; null builds a tiny random model
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)
    dtype: DType = DType.float32
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
        if "{media}" not in self.prompt_template or "{question}" not in self.question_template:
            raise ConfigValueError(
                "backbone.prompt_template needs {media}; question_template needs {question}"
            )
        require(
            "backbone",
            {
                "image_size": self.image_size >= 1,
                "question_batch_size": self.question_batch_size >= 1,
                "yes_tokens": len(self.yes_tokens) >= 1,
                "no_tokens": len(self.no_tokens) >= 1,
            },
            self,
        )
