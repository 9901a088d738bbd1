"""Text-to-image and text-to-video generators on real diffusers classes, behind one interface.

Families:

- ``sd``: ``UNet2DConditionModel`` + ``CLIPTextModel`` (Stable Diffusion 1.x/2.x layout). The tiny
  default builds both from config, with the locally trained tokenizer, on a space-to-depth latent.
- ``sdxl``: SDXL's UNet (``text_time`` added conditioning) + two CLIP text encoders + its VAE.
- ``cogvideox``: ``CogVideoXTransformer3DModel`` + ``T5EncoderModel``; tiny from config on
  space-to-depth frames, or CogVideoX-2B with its 3-D VAE.

A generator folder mirrors the diffusers layout (``unet/`` or ``transformer/``, ``text_encoder/``,
``tokenizer/``, ``scheduler/``, optional ``vae/``) plus ``vrexp_generator.json``; the same loader reads
it and a hub checkpoint. LoRA adapters (peft, through diffusers' ``add_adapter``) make the frozen
base reachable by ``disable_adapters``, which is how DPO gets its reference without a second copy.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import diffusers
import numpy as np
import torch
from diffusers import CogVideoXTransformer3DModel, UNet2DConditionModel
from omegaconf import OmegaConf
from torch import nn
from transformers import (
    AutoTokenizer,
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    T5Config,
    T5EncoderModel,
)

from vrexp.backbones.tokenizer import train_tokenizer, training_corpus
from vrexp.configs import GeneratorConfig
from vrexp.configs.checks import require_model_folder
from vrexp.configs.versioning import check_format, stamp
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
            cond = _cat(self.encode_prompts([""] * len(prompts)), cond)
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


def _cat(a: Conditioning, b: Conditioning) -> Conditioning:
    return {k: torch.cat([a[k], b[k]]) for k in a}


def _tokenize(tokenizer: Any, prompts: Sequence[str], device: torch.device) -> torch.Tensor:
    ids = tokenizer(
        list(prompts),
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids
    return ids.to(device)


# ------------------------------------------------------------------------------ families
class SDGenerator(TextToMediaGenerator):
    family = "sd"
    denoiser_folder = "unet"
    denoiser_class: ClassVar[type] = UNet2DConditionModel

    def encode_prompts(self, prompts: Sequence[str]) -> Conditioning:
        encoder = self.text_encoders[0]
        hidden = encoder(_tokenize(self.tokenizers[0], prompts, self.device))[0]
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
        tokenizer = _tiny_tokenizer(t.vocab_size, t.max_text_length)
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
                **_special_ids(tokenizer),
            )
        )
        schedule = NoiseSchedule.create(cfg.prediction_type, cfg.num_train_timesteps)
        return cls(unet, [encoder], [tokenizer], codec, schedule, cfg)


class SDXLGenerator(SDGenerator):
    family = "sdxl"

    def encode_prompts(self, prompts: Sequence[str]) -> Conditioning:
        # As StableDiffusionXLPipeline.encode_prompt: penultimate hidden states of both encoders,
        # concatenated; the second encoder's projected pooled output is the added text embedding.
        hidden, pooled = [], None
        for encoder, tokenizer in zip(self.text_encoders, self.tokenizers, strict=True):
            out = encoder(_tokenize(tokenizer, prompts, self.device), output_hidden_states=True)
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


class CogVideoXGenerator(TextToMediaGenerator):
    family = "cogvideox"
    denoiser_folder = "transformer"

    def encode_prompts(self, prompts: Sequence[str]) -> Conditioning:
        ids = _tokenize(self.tokenizers[0], prompts, self.device)
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
        tokenizer = _tiny_tokenizer(t.vocab_size, t.max_text_length)
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


FAMILIES: dict[str, type[TextToMediaGenerator]] = {
    "sd": SDGenerator,
    "sdxl": SDXLGenerator,
    "cogvideox": CogVideoXGenerator,
}
DENOISERS = {"unet": UNet2DConditionModel, "transformer": CogVideoXTransformer3DModel}
TEXT_ENCODERS: dict[str, tuple[type, ...]] = {
    "sd": (CLIPTextModel,),
    "sdxl": (CLIPTextModel, CLIPTextModelWithProjection),
    "cogvideox": (T5EncoderModel,),
}


def _tiny_tokenizer(vocab_size: int, max_length: int) -> Any:
    tokenizer = train_tokenizer(training_corpus(dimensions_dir()), [], vocab_size)
    tokenizer.model_max_length = max_length
    return tokenizer


def _special_ids(tokenizer: Any) -> dict[str, int]:
    return {
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }


# ------------------------------------------------------------------------------ building, loading
def build_generator(cfg: GeneratorConfig) -> TextToMediaGenerator:
    """The generator a config describes: tiny from config, or weights from a hub id or folder."""
    if cfg.family not in FAMILIES:
        raise GeneratorError(f"generator.family={cfg.family!r}; expected one of {sorted(FAMILIES)}")
    family = FAMILIES[cfg.family]
    if cfg.name_or_path is None:
        torch.manual_seed(cfg.tiny.seed)
        generator = family.build_tiny(cfg)
    else:
        generator = _load_components(family, cfg)
    generator.to(DTYPES[cfg.dtype])
    if cfg.lora.enabled:
        generator.add_lora(cfg.lora.r, cfg.lora.alpha, cfg.lora.target_modules, cfg.lora.dropout)
    return generator


def _load_components(
    family: type[TextToMediaGenerator], cfg: GeneratorConfig
) -> TextToMediaGenerator:
    source = cfg.name_or_path
    require_model_folder(source, "generator.name_or_path")
    kwargs: dict[str, Any] = {"local_files_only": cfg.local_files_only}
    if cfg.variant:
        kwargs["variant"] = cfg.variant
    dtype = DTYPES[cfg.dtype]
    try:
        denoiser = DENOISERS[family.denoiser_folder].from_pretrained(
            source, subfolder=family.denoiser_folder, torch_dtype=dtype, **kwargs
        )
        encoders, tokenizers = [], []
        for i, encoder_class in enumerate(TEXT_ENCODERS[family.family]):
            suffix = "" if i == 0 else f"_{i + 1}"
            encoders.append(
                encoder_class.from_pretrained(
                    source, subfolder=f"text_encoder{suffix}", dtype=dtype, **kwargs
                )
            )
            tokenizers.append(
                AutoTokenizer.from_pretrained(
                    source, subfolder=f"tokenizer{suffix}", local_files_only=cfg.local_files_only
                )
            )
        scheduler = _load_scheduler(source, cfg.local_files_only)
        codec = _load_codec(family, cfg, source, kwargs, dtype)
    except (OSError, ValueError) as err:
        if Path(source).exists():
            raise GeneratorError(
                f"cannot load generator {cfg.name!r} from {source}: {err}"
            ) from err
        raise GeneratorError(
            f"generator {cfg.name!r}: weights for {source!r} are not on this machine and "
            f"downloading is off (generator.local_files_only=true). Fetch them where there is "
            f"network, e.g. `hf download {source} --local-dir DIR` (huggingface_hub's CLI), then run with "
            f"generator.name_or_path=DIR, or set generator.local_files_only=false to let diffusers "
            f"download them."
        ) from err
    return family(denoiser, encoders, tokenizers, codec, NoiseSchedule.for_training(scheduler), cfg)


def _load_scheduler(source: str, local_files_only: bool) -> Any:
    config = diffusers.DDPMScheduler.load_config(
        source, subfolder="scheduler", local_files_only=local_files_only
    )
    scheduler_class = getattr(diffusers, config["_class_name"], None)
    if scheduler_class is None:
        raise ValueError(f"unknown scheduler class {config['_class_name']!r} in {source}")
    return scheduler_class.from_config(config)


def _load_codec(
    family: type[TextToMediaGenerator],
    cfg: GeneratorConfig,
    source: str,
    kwargs: dict[str, Any],
    dtype: torch.dtype,
) -> nn.Module:
    has_vae = (Path(source) / "vae").is_dir() or not Path(source).exists()
    if not has_vae:
        return SpaceToDepth(cfg.space_to_depth)
    vae_class = (
        diffusers.AutoencoderKLCogVideoX
        if family.family == "cogvideox"
        else diffusers.AutoencoderKL
    )
    vae = vae_class.from_pretrained(source, subfolder="vae", torch_dtype=dtype, **kwargs)
    return VaeCodec(vae, video=family.family == "cogvideox")


def load_generator(directory: str | Path, **overrides: Any) -> TextToMediaGenerator:
    """Reload a folder written by :meth:`TextToMediaGenerator.save_pretrained`.

    ``overrides`` are GeneratorConfig fields (``dtype``, ``num_inference_steps``, the load switch
    ``local_files_only``, ...); an old folder's own load switches are ignored."""
    directory = Path(directory)
    settings_file = directory / CONFIG_FILE
    if not settings_file.is_file():
        raise GeneratorError(
            f"{directory} is not a vrexp generator folder (no {CONFIG_FILE}); pretrain one with "
            "`python run.py task=train_generator`, or point generator.name_or_path at a diffusers "
            "checkpoint"
        )
    _, saved = check_format(directory, json.loads(settings_file.read_text()))
    if "name_or_path" in overrides:
        raise GeneratorError(f"load_generator({directory}): the folder is the weights' source")
    saved = {k: v for k, v in saved.items() if k not in LOAD_SWITCHES}
    settings = OmegaConf.merge(OmegaConf.structured(GeneratorConfig), saved, overrides)
    settings.name_or_path = str(directory)
    settings.lora.enabled = False
    return build_generator(OmegaConf.to_object(settings))
