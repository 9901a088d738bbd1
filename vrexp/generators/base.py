"""The generator interface every family implements: ``TextToMediaGenerator`` (encode prompts,
denoise, codecs, sampling with classifier-free guidance, LoRA with a disabled-adapter reference,
saving), and what the families share: dtypes, tokenizing, the tiny local tokenizer.

A generator folder mirrors the diffusers layout (``unet/`` or ``transformer/``, ``text_encoder/``,
``tokenizer/``, ``scheduler/``, optional ``vae/``) plus ``vrexp_generator.json``; the same loader reads
it and a hub checkpoint (:mod:`vrexp.generators.loading`). LoRA adapters (peft, through diffusers'
``add_adapter``) make the frozen base reachable by ``disable_adapters``, which is how DPO gets its
reference without a second copy.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from vrexp.backbones.tokenizer import train_tokenizer, training_corpus
from vrexp.configs import GeneratorConfig
from vrexp.configs.versioning import stamp
from vrexp.generators.codecs import SpaceToDepth, VaeCodec, from_unit, to_unit
from vrexp.generators.schedules import NoiseSchedule
from vrexp.resources import dimensions_dir

CONFIG_FILE = "vrexp_generator.json"
# GeneratorConfig fields that say how to load, not what the generator is: not saved in a folder's
# CONFIG_FILE, and ignored there on load (folders without a format_version hold them) in favour of
# the caller's value. name_or_path is always the folder; variant names hub weight files (fp16), but
# save_pretrained writes plain ones.
LOAD_SWITCHES = ("name_or_path", "local_files_only", "variant")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
Conditioning = dict[str, torch.Tensor]


class GeneratorError(RuntimeError):
    """A generator that cannot be built, loaded or run, with the reason and the fix."""


class TextToMediaGenerator(nn.Module):
    """A denoiser, its text encoder(s), a codec and a noise schedule.

    ``denoiser`` is the only part preference optimization trains; ``denoise(latents, t, cond)`` is
    its forward in the family's calling convention.
    """

    family: ClassVar[str]
    denoiser_folder: ClassVar[str]
    # The denoiser's repeated blocks (and the text encoders' layers) that FSDP shards as one unit
    # each and recomputes under activation checkpointing (trainer=fsdp).
    shard_layers: ClassVar[tuple[type[nn.Module], ...]] = ()

    def __init__(
        self,
        denoiser: nn.Module,
        text_encoders: Sequence[nn.Module],
        tokenizers: Sequence[Any],
        codec: nn.Module,
        schedule: NoiseSchedule,
        config: GeneratorConfig,
    ) -> None:
        super().__init__()
        self.denoiser, self.codec, self.schedule, self.config = denoiser, codec, schedule, config
        self.text_encoders = nn.ModuleList(text_encoders)
        self.tokenizers = list(tokenizers)

    # --------------------------------------------------------------- family hooks
    def encode_prompts(self, prompts: Sequence[str]) -> Conditioning:
        raise NotImplementedError

    def denoise(
        self,
        latents: torch.Tensor,
        timesteps: torch.Tensor,
        cond: Conditioning,
        model: nn.Module | None = None,
    ) -> torch.Tensor:
        """The denoiser's prediction; ``model`` swaps in another denoiser of the same class (a
        frozen reference copy)."""
        raise NotImplementedError

    @property
    def video(self) -> bool:
        return self.config.media == "video"

    @property
    def device(self) -> torch.device:
        return next(self.denoiser.parameters()).device

    # --------------------------------------------------------------- media <-> latents
    def encode_media(self, media: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 ``[B, H, W, 3]`` (or ``[B, T, H, W, 3]``) -> latents on the model's device."""
        expected = 5 if self.video else 4
        if np.ndim(media) != expected:
            raise GeneratorError(
                f"generator {self.config.name!r} takes {self.config.media} batches of rank "
                f"{expected} (uint8 [B, {'T, ' if self.video else ''}H, W, 3]), got shape "
                f"{tuple(np.shape(media))}"
            )
        with torch.no_grad():
            return self.codec.encode(to_unit(media).to(self.device))

    def decode_latents(self, latents: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return from_unit(self.codec.decode(latents))

    def latent_shape(self, batch: int) -> tuple[int, ...]:
        """``(batch, [frames,] channels, h, w)`` of the latents for the configured media size."""
        if isinstance(self.codec, SpaceToDepth):
            down, frames = self.codec.factor, self.config.num_frames
        else:
            vae = self.codec.vae
            down = 2 ** (len(vae.config.block_out_channels) - 1)
            ratio = int(vae.config.get("temporal_compression_ratio", 4))
            frames = (self.config.num_frames - 1) // ratio + 1
        size = self.config.image_size // down
        inner = (self.codec.latent_channels(), size, size)
        return (batch, frames, *inner) if self.video else (batch, *inner)

    # --------------------------------------------------------------- sampling
    def initial_noise(self, seeds: Sequence[int]) -> torch.Tensor:
        """One noise tensor per seed, so candidate k of prompt p is reproducible on its own."""
        shape = self.latent_shape(1)[1:]
        noise = [torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds]
        return torch.stack(noise).to(self.device)

    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[str],
        seeds: Sequence[int],
        *,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
    ) -> np.ndarray:
        """uint8 media for each (prompt, seed): ``[B, H, W, 3]`` or ``[B, T, H, W, 3]``."""
        if len(prompts) != len(seeds):
            raise GeneratorError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        # Each submodule's own mode comes back (a DPO run trains the denoiser with its frozen
        # text encoders in eval mode); self.train(flag) would force one mode on all of them.
        modes = [(module, module.training) for module in self.modules()]
        self.eval()
        try:
            return self._sample(prompts, seeds, num_inference_steps, guidance_scale)
        finally:
            for module, mode in modes:
                module.training = mode

    def _sample(
        self,
        prompts: Sequence[str],
        seeds: Sequence[int],
        num_inference_steps: int | None,
        guidance_scale: float | None,
    ) -> np.ndarray:
        steps = num_inference_steps or self.config.num_inference_steps
        guidance = self.config.guidance_scale if guidance_scale is None else guidance_scale
        sampler = self.schedule.sampler()
        sampler.set_timesteps(steps, device=self.device)
        latents = self.initial_noise(seeds) * getattr(sampler, "init_noise_sigma", 1.0)
        cond = self.encode_prompts(prompts)
        if guidance > 1:
            cond = cat_conditioning(self.encode_prompts([""] * len(prompts)), cond)
        for t in sampler.timesteps:
            model_in = torch.cat([latents] * 2) if guidance > 1 else latents
            if hasattr(sampler, "scale_model_input"):
                model_in = sampler.scale_model_input(model_in, t)
            out = self.denoise(model_in, t.expand(len(model_in)), cond)
            if guidance > 1:
                uncond, text = out.chunk(2)
                out = uncond + guidance * (text - uncond)
            latents = sampler.step(out, t, latents).prev_sample
        return self.decode_latents(latents)

    # --------------------------------------------------------------- LoRA and the reference
    def add_lora(
        self, r: int, alpha: int, target_modules: Sequence[str], dropout: float = 0.0
    ) -> None:
        from peft import LoraConfig

        self.denoiser.requires_grad_(False)  # only the adapters train
        self.denoiser.add_adapter(
            LoraConfig(
                r=r,
                lora_alpha=alpha,
                lora_dropout=dropout,
                target_modules=list(target_modules),
                init_lora_weights="gaussian",
            )
        )

    @property
    def has_lora(self) -> bool:
        return bool(getattr(self.denoiser, "_hf_peft_config_loaded", False))

    @contextlib.contextmanager
    def adapters_disabled(self) -> Iterator[None]:
        """The frozen base model: LoRA adapters off for the duration."""
        if not self.has_lora:
            raise GeneratorError("adapters_disabled needs LoRA adapters (generator.lora.enabled)")
        self.denoiser.disable_adapters()
        try:
            yield
        finally:
            self.denoiser.enable_adapters()

    def merge_lora(self) -> None:
        """Fold the adapters into the base weights and drop them (a plain model again)."""
        if self.has_lora:
            self.denoiser.fuse_lora()
            self.denoiser.unload_lora()

    # --------------------------------------------------------------- folders
    def save_pretrained(self, directory: str | Path) -> None:
        """A diffusers-layout folder that :func:`load_generator` reloads (LoRA merged in)."""
        if self.has_lora:
            raise GeneratorError(
                "merge_lora() before save_pretrained: the folder holds plain weights"
            )
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.denoiser.save_pretrained(directory / self.denoiser_folder)
        suffixes = [""] + [f"_{i + 1}" for i in range(1, len(self.text_encoders))]
        for suffix, encoder, tokenizer in zip(
            suffixes, self.text_encoders, self.tokenizers, strict=True
        ):
            encoder.save_pretrained(directory / f"text_encoder{suffix}")
            tokenizer.save_pretrained(directory / f"tokenizer{suffix}")
        self.schedule.scheduler.save_pretrained(directory / "scheduler")
        if isinstance(self.codec, VaeCodec):
            self.codec.vae.save_pretrained(directory / "vae")
        settings = {k: v for k, v in asdict(self.config).items() if k not in LOAD_SWITCHES}
        (directory / CONFIG_FILE).write_text(json.dumps(stamp(settings), indent=2) + "\n")


def cat_conditioning(a: Conditioning, b: Conditioning) -> Conditioning:
    return {k: torch.cat([a[k], b[k]]) for k in a}


def tokenize(tokenizer: Any, prompts: Sequence[str], device: torch.device) -> torch.Tensor:
    ids = tokenizer(
        list(prompts),
        split_special_tokens=True,  # a prompt is text: "<|endoftext|>" in it is not the token
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids
    return ids.to(device)


def tiny_tokenizer(vocab_size: int, max_length: int) -> Any:
    tokenizer = train_tokenizer(training_corpus(dimensions_dir()), [], vocab_size)
    tokenizer.model_max_length = max_length
    return tokenizer


def special_ids(tokenizer: Any) -> dict[str, int]:
    return {
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
