"""The ``sdxl`` family: SDXL's UNet (``text_time`` added conditioning) + two CLIP text encoders +
its VAE."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from vrexp.configs import GeneratorConfig
from vrexp.generators.base import (
    Conditioning,
    GeneratorError,
    TextToMediaGenerator,
    tokenize,
)
from vrexp.generators.sd import SDGenerator


class SDXLGenerator(SDGenerator):
    family = "sdxl"

    def encode_prompts(self, prompts: Sequence[str]) -> Conditioning:
        # As StableDiffusionXLPipeline.encode_prompt: penultimate hidden states of both encoders,
        # concatenated; the second encoder's projected pooled output is the added text embedding.
        hidden, pooled = [], None
        for encoder, tokenizer in zip(self.text_encoders, self.tokenizers, strict=True):
            out = encoder(tokenize(tokenizer, prompts, self.device), output_hidden_states=True)
            hidden.append(out.hidden_states[-2])
            pooled = out[0]
        size = self.config.image_size
        # (original size, crop top-left, target size), SDXL's micro-conditioning, unscaled crops.
        time_ids = torch.tensor([[size, size, 0, 0, size, size]], device=self.device)
        return {
            "encoder_hidden_states": torch.cat(hidden, dim=-1),
            "text_embeds": pooled,
            "time_ids": time_ids.expand(len(prompts), -1).to(pooled.dtype),
        }

    def denoise(
        self,
        latents: torch.Tensor,
        timesteps: torch.Tensor,
        cond: Conditioning,
        model: nn.Module | None = None,
    ) -> torch.Tensor:
        model = model or self.denoiser
        dtype = model.dtype
        return model(
            latents.to(dtype),
            timesteps,
            cond["encoder_hidden_states"].to(dtype),
            added_cond_kwargs={
                "text_embeds": cond["text_embeds"].to(dtype),
                "time_ids": cond["time_ids"].to(dtype),
            },
        ).sample

    @classmethod
    def build_tiny(cls, cfg: GeneratorConfig) -> TextToMediaGenerator:
        raise GeneratorError(
            "generator family 'sdxl' has no tiny default; set generator.name_or_path to an SDXL "
            "folder (the tests build one from a tiny config of the same classes)"
        )
