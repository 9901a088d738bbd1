"""The ``sd`` family: ``UNet2DConditionModel`` + ``CLIPTextModel`` (Stable Diffusion 1.x/2.x layout).
The tiny default builds both from config, with the locally trained tokenizer, on a space-to-depth
latent."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.resnet import ResnetBlock2D
from torch import nn
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
)
from transformers.models.clip.modeling_clip import CLIPEncoderLayer

from vrexp.configs import GeneratorConfig
from vrexp.generators.base import (
    Conditioning,
    TextToMediaGenerator,
    special_ids,
    tiny_tokenizer,
    tokenize,
)
from vrexp.generators.codecs import SpaceToDepth
from vrexp.generators.schedules import NoiseSchedule


class SDGenerator(TextToMediaGenerator):
    family = "sd"
    denoiser_folder = "unet"
    denoiser_class: ClassVar[type] = UNet2DConditionModel
    shard_layers = (BasicTransformerBlock, ResnetBlock2D, CLIPEncoderLayer)

    def encode_prompts(self, prompts: Sequence[str]) -> Conditioning:
        encoder = self.text_encoders[0]
        hidden = encoder(tokenize(self.tokenizers[0], prompts, self.device))[0]
        return {"encoder_hidden_states": hidden}

    def denoise(
        self,
        latents: torch.Tensor,
        timesteps: torch.Tensor,
        cond: Conditioning,
        model: nn.Module | None = None,
    ) -> torch.Tensor:
        model = model or self.denoiser
        return model(latents.to(model.dtype), timesteps, cond["encoder_hidden_states"]).sample

    @classmethod
    def build_tiny(cls, cfg: GeneratorConfig) -> TextToMediaGenerator:
        t = cfg.tiny
        tokenizer = tiny_tokenizer(t.vocab_size, t.max_text_length)
        codec = SpaceToDepth(cfg.space_to_depth)
        blocks = len(t.block_out_channels)
        unet = UNet2DConditionModel(
            sample_size=cfg.image_size // cfg.space_to_depth,
            in_channels=codec.latent_channels(),
            out_channels=codec.latent_channels(),
            layers_per_block=t.layers_per_block,
            block_out_channels=tuple(t.block_out_channels),
            down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (blocks - 1),
            up_block_types=("CrossAttnUpBlock2D",) * (blocks - 1) + ("UpBlock2D",),
            cross_attention_dim=t.text_hidden_size,
            attention_head_dim=t.attention_head_dim,
            norm_num_groups=t.norm_num_groups,
        )
        encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(tokenizer),
                hidden_size=t.text_hidden_size,
                intermediate_size=2 * t.text_hidden_size,
                num_hidden_layers=t.text_layers,
                num_attention_heads=t.text_heads,
                max_position_embeddings=t.max_text_length,
                **special_ids(tokenizer),
            )
        )
        schedule = NoiseSchedule.create(cfg.prediction_type, cfg.num_train_timesteps)
        return cls(unet, [encoder], [tokenizer], codec, schedule, cfg)
