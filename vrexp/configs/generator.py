"""Schema of ``generator/``: the text-to-image / text-to-video generator (diffusers families)."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

from vrexp.configs.checks import ConfigValueError
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
        if self.num_inference_steps < 1 or self.num_train_timesteps < 1:
            raise ConfigValueError(
                "generator.num_inference_steps and num_train_timesteps must be >= 1"
            )
