"""Building a generator from its config (tiny from config, or a hub id / local folder) and loading a
saved generator folder; the registry of families."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import diffusers
import torch
from diffusers import CogVideoXTransformer3DModel, UNet2DConditionModel
from omegaconf import OmegaConf
from safetensors import SafetensorError
from torch import nn
from transformers import (
    AutoTokenizer,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    T5EncoderModel,
)

from vrexp.configs import GeneratorConfig
from vrexp.configs.checks import require_model_folder
from vrexp.configs.choices import GeneratorFamily
from vrexp.configs.versioning import check_format
from vrexp.generators.base import (
    CONFIG_FILE,
    DTYPES,
    LOAD_SWITCHES,
    GeneratorError,
    TextToMediaGenerator,
)
from vrexp.generators.codecs import SpaceToDepth, VaeCodec
from vrexp.generators.cogvideox import CogVideoXGenerator
from vrexp.generators.schedules import NoiseSchedule
from vrexp.generators.sd import SDGenerator
from vrexp.generators.sdxl import SDXLGenerator
from vrexp.trust import check_model_folder, refuse_folder_switches

FAMILIES: dict[GeneratorFamily, type[TextToMediaGenerator]] = {
    GeneratorFamily.sd: SDGenerator,
    GeneratorFamily.sdxl: SDXLGenerator,
    GeneratorFamily.cogvideox: CogVideoXGenerator,
}
DENOISERS = {"unet": UNet2DConditionModel, "transformer": CogVideoXTransformer3DModel}
TEXT_ENCODERS: dict[str, tuple[type, ...]] = {
    "sd": (CLIPTextModel,),
    "sdxl": (CLIPTextModel, CLIPTextModelWithProjection),
    "cogvideox": (T5EncoderModel,),
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
    # Generators never run a folder's code: there is no switch to allow it.
    check_model_folder(source, trust_remote_code=False, opt_in="no setting (generators)")
    kwargs: dict[str, Any] = {"local_files_only": cfg.local_files_only, "use_safetensors": True}
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
                    source,
                    subfolder=f"tokenizer{suffix}",
                    local_files_only=cfg.local_files_only,
                    trust_remote_code=False,
                )
            )
        scheduler = _load_scheduler(source, cfg.local_files_only)
        codec = _load_codec(family, cfg, source, kwargs, dtype)
    except (OSError, ValueError, SafetensorError) as err:
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
    refuse_folder_switches(settings_file, saved, ("trust_remote_code",), granted=False)
    saved = {k: v for k, v in saved.items() if k not in LOAD_SWITCHES}
    settings = OmegaConf.merge(OmegaConf.structured(GeneratorConfig), saved, overrides)
    settings.name_or_path = str(directory)
    settings.lora.enabled = False
    return build_generator(OmegaConf.to_object(settings))
