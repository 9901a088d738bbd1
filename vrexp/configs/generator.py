"""Schema of ``generator/``: the text-to-image / text-to-video generator (diffusers families)."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

from vrexp.configs.checks import ConfigValueError, require
from vrexp.configs.choices import DType, GeneratorFamily, Media, PredictionType


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

    def __post_init__(self) -> None:
        require(
            "generator.tiny",
            {
                "block_out_channels": len(self.block_out_channels) >= 1
                and all(c >= 1 for c in self.block_out_channels),
                "layers_per_block": self.layers_per_block >= 1,
                "attention_head_dim": self.attention_head_dim >= 1,
                "norm_num_groups": self.norm_num_groups >= 1,
                "num_layers": self.num_layers >= 1,
                "num_heads": self.num_heads >= 1,
                "head_dim": self.head_dim >= 1,
                "time_embed_dim": self.time_embed_dim >= 1,
                "patch_size": self.patch_size >= 1,
                "text_hidden_size": self.text_hidden_size >= 1,
                "text_layers": self.text_layers >= 1,
                "text_heads": self.text_heads >= 1,
                "max_text_length": self.max_text_length >= 2,
                "vocab_size": self.vocab_size >= 16,
            },
            self,
        )


@dataclass
class GeneratorLora:
    """LoRA on the denoiser (peft via diffusers' add_adapter); the DPO reference is the base
    with the adapters disabled."""

    enabled: bool = False
    r: int = 8
    alpha: int = 8
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["to_q", "to_k", "to_v", "to_out.0"])

    def __post_init__(self) -> None:
        require(
            "generator.lora",
            {
                "r": self.r >= 1,
                "alpha": self.alpha > 0,
                "dropout": 0.0 <= self.dropout < 1.0,
                "target_modules": len(self.target_modules) >= 1,
            },
            self,
        )


@dataclass
class GeneratorConfig:
    name: str = MISSING
    family: GeneratorFamily = MISSING
    media: Media = MISSING
    name_or_path: str | None = None  # hub id or local folder; null builds a tiny random model
    variant: str | None = None  # e.g. fp16 weight files on the hub
    tiny: TinyGeneratorConfig = field(default_factory=TinyGeneratorConfig)
    dtype: DType = DType.float32
    image_size: int = 64
    num_frames: int = 8
    space_to_depth: int = 4  # tiny models' lossless latent: f x f pixel blocks -> channels
    # Tiny models' target; v-prediction is stable at high noise for a briefly trained pixel model.
    prediction_type: PredictionType = PredictionType.v_prediction
    num_train_timesteps: int = 1000
    num_inference_steps: int = 20
    guidance_scale: float = 3.0  # classifier-free guidance at sampling (1 turns it off)
    local_files_only: bool = True  # never reach the network unless the user allows it
    lora: GeneratorLora = field(default_factory=GeneratorLora)

    def __post_init__(self) -> None:
        if self.space_to_depth < 1 or self.image_size % self.space_to_depth:
            raise ConfigValueError(
                f"generator.image_size={self.image_size} must be divisible by "
                f"space_to_depth={self.space_to_depth}"
            )
        require(
            "generator",
            {
                "image_size": self.image_size >= 1,
                "num_frames": self.num_frames >= 1,
                "num_train_timesteps": self.num_train_timesteps >= 1,
                "num_inference_steps": self.num_inference_steps >= 1,
                "guidance_scale": self.guidance_scale >= 0,
            },
            self,
        )
