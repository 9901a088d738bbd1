"""The ``cogvideox`` family: ``CogVideoXTransformer3DModel`` + ``T5EncoderModel``; tiny from config
on space-to-depth frames, or CogVideoX-2B with its 3-D VAE."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from diffusers import CogVideoXTransformer3DModel
from diffusers.models.transformers.cogvideox_transformer_3d import CogVideoXBlock
from torch import nn
from transformers import (
    T5Config,
    T5EncoderModel,
)
from transformers.models.t5.modeling_t5 import T5Block

from vrexp.configs import GeneratorConfig
from vrexp.generators.base import (
    Conditioning,
    TextToMediaGenerator,
    tiny_tokenizer,
    tokenize,
)
from vrexp.generators.codecs import SpaceToDepth
from vrexp.generators.schedules import NoiseSchedule


class CogVideoXGenerator(TextToMediaGenerator):
    family = "cogvideox"
    denoiser_folder = "transformer"
    shard_layers = (CogVideoXBlock, T5Block)

    def encode_prompts(self, prompts: Sequence[str]) -> Conditioning:
        ids = tokenize(self.tokenizers[0], prompts, self.device)
        return {"encoder_hidden_states": self.text_encoders[0](ids)[0]}

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
            hidden_states=latents.to(dtype),
            encoder_hidden_states=cond["encoder_hidden_states"].to(dtype),
            timestep=timesteps,
            image_rotary_emb=self._rotary(latents),
            return_dict=False,
        )[0]

    def _rotary(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        config = self.denoiser.config
        if not config.use_rotary_positional_embeddings:
            return None
        from diffusers.models.embeddings import get_3d_rotary_pos_embed

        p = config.patch_size
        grid_h, grid_w = latents.shape[-2] // p, latents.shape[-1] // p
        base_w, base_h = config.sample_width // p, config.sample_height // p
        return get_3d_rotary_pos_embed(
            embed_dim=config.attention_head_dim,
            crops_coords=((0, 0), (grid_h, grid_w))
            if (grid_h, grid_w) == (base_h, base_w)
            else None,
            grid_size=(grid_h, grid_w),
            temporal_size=latents.shape[1],
            grid_type="slice",
            max_size=(base_h, base_w),
            device=latents.device,
        )

    @classmethod
    def build_tiny(cls, cfg: GeneratorConfig) -> TextToMediaGenerator:
        t = cfg.tiny
        tokenizer = tiny_tokenizer(t.vocab_size, t.max_text_length)
        codec = SpaceToDepth(cfg.space_to_depth)
        size = cfg.image_size // cfg.space_to_depth
        transformer = CogVideoXTransformer3DModel(
            num_attention_heads=t.num_heads,
            attention_head_dim=t.head_dim,
            in_channels=codec.latent_channels(),
            out_channels=codec.latent_channels(),
            time_embed_dim=t.time_embed_dim,
            text_embed_dim=t.text_hidden_size,
            num_layers=t.num_layers,
            sample_width=size,
            sample_height=size,
            # No temporal VAE: each frame is a latent frame; the positional table is sized so.
            sample_frames=(cfg.num_frames - 1) * 4 + 1,
            temporal_compression_ratio=4,
            patch_size=t.patch_size,
            max_text_seq_length=t.max_text_length,
            use_rotary_positional_embeddings=False,
        )
        encoder = T5EncoderModel(
            T5Config(
                vocab_size=len(tokenizer),
                d_model=t.text_hidden_size,
                d_kv=t.text_hidden_size // t.text_heads,
                d_ff=2 * t.text_hidden_size,
                num_layers=t.text_layers,
                num_heads=t.text_heads,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                dropout_rate=0.0,
            )
        )
        schedule = NoiseSchedule.create(cfg.prediction_type, cfg.num_train_timesteps)
        return cls(transformer, [encoder], [tokenizer], codec, schedule, cfg)
