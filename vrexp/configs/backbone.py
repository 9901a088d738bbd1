"""Schema of ``backbone/``: the checklist VLM (a family, tiny or real weights, frame sampling)."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

from vrexp.configs.checks import ConfigValueError, require
from vrexp.configs.choices import BackboneFamily, DType


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
    fps: float | None = None  # when set, sample at this rate (up to num_frames; paper §3.3)
    source_fps: float = 8.0  # frame rate of stored frame sequences that carry no timing
    # Qwen-VL families take a clip as one video input of temporal patches (two frames per vision
    # token); false sends one image per frame, as for families without video input (LLaVA).
    native: bool = True

    def __post_init__(self) -> None:
        require(
            "backbone.frames",
            {
                "num_frames": self.num_frames >= 1,
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
