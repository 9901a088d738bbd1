"""Backbone families on real transformers classes: Qwen2-VL, Qwen2.5-VL and LLaVA.

Each family knows its media placeholder, how to build a tiny randomly initialised model with a
locally trained tokenizer, how to load real weights (offline unless allowed, with an error that says
how to provide them), and what position ids a suffix needs after a cached prefix.

Qwen processors carry a video sub-processor that cannot be built without torchvision (absent on CPU
machines; docs/stack.md §3), so Qwen families use an image-only processor subclass, and their native
video input (temporal patches) is built from the image processor by ``video.py``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from omegaconf import OmegaConf
from safetensors import SafetensorError
from transformers.models.clip.modeling_clip import CLIPEncoderLayer
from transformers.models.llama.modeling_llama import LlamaDecoderLayer
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import (
    Qwen2_5_VLDecoderLayer,
    Qwen2_5_VLVisionBlock,
)
from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VLDecoderLayer, Qwen2VLVisionBlock
from transformers.processing_utils import ProcessorMixin

from vrexp.backbones.base import (
    BACKBONE_FILE,
    LOAD_SWITCHES,
    BackboneError,
    ChecklistBackbone,
    Prefix,
)
from vrexp.backbones.media import sampled
from vrexp.backbones.patch_init import init_patch_embedding
from vrexp.backbones.tokenizer import train_tokenizer, training_corpus
from vrexp.backbones.video import video_patches
from vrexp.configs import BackboneConfig
from vrexp.configs.checks import require_model_folder
from vrexp.configs.choices import BackboneFamily, FrameSelection, PatchInit
from vrexp.configs.versioning import check_format
from vrexp.media import Clip
from vrexp.resources import dimensions_dir
from vrexp.trust import check_model_folder, refuse_folder_switches

QWEN_SPECIAL = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _image_only(base: type) -> type:
    """A Qwen processor without the video sub-processor (which needs torchvision)."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        self.image_token, self.video_token = "<|image_pad|>", "<|video_pad|>"
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)

    return type(f"ImageOnly{base.__name__}", (base,), {"__init__": __init__})


ImageOnlyQwen2VLProcessor = _image_only(transformers.Qwen2VLProcessor)
ImageOnlyQwen2_5_VLProcessor = _image_only(transformers.Qwen2_5_VLProcessor)


def _tiny_tokenizer(special: list[str], vocab_size: int) -> Any:
    return train_tokenizer(training_corpus(dimensions_dir()), special, vocab_size)


def _token_ids(tokenizer: Any, names: dict[str, str]) -> dict[str, int]:
    return {key: tokenizer.convert_tokens_to_ids(token) for key, token in names.items()}


def _text_config(cfg: BackboneConfig, tokenizer: Any) -> dict[str, Any]:
    t = cfg.tiny
    special = _token_ids(
        tokenizer, {"bos_token_id": "<s>", "eos_token_id": "</s>", "pad_token_id": "<pad>"}
    )
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": t.hidden_size,
        "intermediate_size": t.intermediate_size,
        "num_hidden_layers": t.num_layers,
        "num_attention_heads": t.num_heads,
        "num_key_value_heads": t.num_kv_heads,
        "max_position_embeddings": 4096,
        **special,
    }


class QwenVLBackbone(ChecklistBackbone):
    family = "qwen2_vl"
    media_token = "<|vision_start|><|image_pad|><|vision_end|>"
    vision_module = "visual"
    projector_module = "visual.merger"
    model_class: Any = transformers.Qwen2VLForConditionalGeneration
    config_class: Any = transformers.Qwen2VLConfig
    processor_class: Any = ImageOnlyQwen2VLProcessor
    native_video = True
    shard_layers = (Qwen2VLDecoderLayer, Qwen2VLVisionBlock)

    def video_inputs(
        self, media: Sequence[np.ndarray | Clip], frames: list[list[np.ndarray]]
    ) -> Any:
        image_processor = self.processor.image_processor
        clips = [video_patches(image_processor, f) for f in frames]
        grids = torch.tensor([grid for _, grid in clips])
        tokens = int(grids[0].prod()) // image_processor.merge_size**2
        video = f"<|vision_start|>{self.processor.video_token * tokens}<|vision_end|>"
        text = [self.config.prompt_template.format(media=video)] * len(clips)
        inputs = self.tokenizer(text, return_tensors="pt")
        inputs["mm_token_type_ids"] = torch.tensor(
            self.processor.create_mm_token_type_ids(inputs["input_ids"])
        )
        inputs["pixel_values_videos"] = torch.from_numpy(np.concatenate([x for x, _ in clips]))
        inputs["video_grid_thw"] = grids
        return inputs

    def prefix_positions(self, inputs: Any) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        # The model's own M-RoPE index, computed once here and handed to the forward. Text after
        # the prefix continues from the position of the prefix's last (text) token. The model's
        # stored ``rope_deltas`` (transformers 5.24) instead assume text resumes after the largest
        # vision position, which a full forward does not do after a clip with more temporal
        # patches than merged rows.
        grids = ("image_grid_thw", "video_grid_thw", "second_per_grid_ts")
        positions, _ = self.base_model.model.get_rope_index(
            inputs["input_ids"],
            inputs["mm_token_type_ids"],
            attention_mask=inputs.get("attention_mask"),
            **{k: inputs[k] for k in grids if k in inputs},
        )
        return positions, positions[0, :, -1] + 1 - inputs["input_ids"].shape[1]

    def suffix_position_ids(
        self, prefix: Prefix, item: torch.Tensor, offsets: torch.Tensor
    ) -> torch.Tensor:
        # M-RoPE: text positions continue after the prefix, shifted by the item's rope delta,
        # identical on the temporal, height and width axes.
        positions = prefix.length + offsets + prefix.rope_deltas[item].view(-1, 1)
        return positions.unsqueeze(0).expand(3, -1, -1)

    @classmethod
    def vision_config(cls, cfg: BackboneConfig) -> dict[str, Any]:
        t = cfg.tiny
        return {
            "depth": t.vision_layers,
            "embed_dim": t.vision_hidden_size,
            "hidden_size": t.hidden_size,
            "num_heads": t.vision_heads,
            "mlp_ratio": 2,
            "patch_size": t.patch_size,
            "spatial_merge_size": 2,
            "temporal_patch_size": t.temporal_patch_size,
        }

    @classmethod
    def image_processor(cls, cfg: BackboneConfig) -> Any:
        pixels = cfg.image_size**2
        return transformers.Qwen2VLImageProcessorPil(
            min_pixels=pixels,
            max_pixels=pixels,
            patch_size=cfg.tiny.patch_size,
            temporal_patch_size=cfg.tiny.temporal_patch_size,
        )

    @classmethod
    def build_tiny(cls, cfg: BackboneConfig) -> tuple[Any, Any]:
        tokenizer = _tiny_tokenizer(QWEN_SPECIAL, cfg.tiny.vocab_size)
        text = _text_config(cfg, tokenizer)
        head_dim = cfg.tiny.hidden_size // cfg.tiny.num_heads
        third = head_dim // 2 // 4
        text["rope_scaling"] = {
            "type": "mrope",
            "mrope_section": [head_dim // 2 - 2 * third, third, third],
        }
        ids = _token_ids(
            tokenizer,
            {
                "image_token_id": "<|image_pad|>",
                "video_token_id": "<|video_pad|>",
                "vision_start_token_id": "<|vision_start|>",
                "vision_end_token_id": "<|vision_end|>",
            },
        )
        config = cls.config_class(text_config=text, vision_config=cls.vision_config(cfg), **ids)
        torch.manual_seed(cfg.tiny.seed)
        model = cls.model_class(config)
        if cfg.tiny.patch_init == PatchInit.dct:
            init_patch_embedding(model.model.visual.patch_embed.proj)
        return model, cls.processor_class(cls.image_processor(cfg), tokenizer)


class Qwen2_5_VLBackbone(QwenVLBackbone):
    family = "qwen2_5_vl"
    model_class = transformers.Qwen2_5_VLForConditionalGeneration
    config_class = transformers.Qwen2_5_VLConfig
    processor_class = ImageOnlyQwen2_5_VLProcessor
    shard_layers = (Qwen2_5_VLDecoderLayer, Qwen2_5_VLVisionBlock)

    def video_inputs(
        self, media: Sequence[np.ndarray | Clip], frames: list[list[np.ndarray]]
    ) -> Any:
        inputs = super().video_inputs(media, frames)
        # Qwen2.5-VL spaces temporal positions by real time: seconds per temporal patch, from the
        # times of the frames it sees.
        sampling = self.config.frames
        patch = self.processor.image_processor.temporal_patch_size
        seconds = []
        for item in media:
            times = sampled(item, sampling).timestamps
            spacing = float(np.diff(times).mean()) if len(times) > 1 else 1.0 / sampling.source_fps
            seconds.append(patch * spacing)
        inputs["second_per_grid_ts"] = torch.tensor(seconds)
        return inputs

    @classmethod
    def vision_config(cls, cfg: BackboneConfig) -> dict[str, Any]:
        t = cfg.tiny
        return {
            "depth": t.vision_layers,
            "hidden_size": t.vision_hidden_size,
            "out_hidden_size": t.hidden_size,
            "intermediate_size": 2 * t.vision_hidden_size,
            "num_heads": t.vision_heads,
            "patch_size": t.patch_size,
            "spatial_merge_size": 2,
            "temporal_patch_size": t.temporal_patch_size,
            "window_size": 4 * t.patch_size,
            "fullatt_block_indexes": [t.vision_layers - 1],
        }


class LlavaBackbone(ChecklistBackbone):
    family = "llava"
    media_token = "<image>"
    vision_module = "vision_tower"
    projector_module = "multi_modal_projector"
    model_class: Any = transformers.LlavaForConditionalGeneration
    processor_class: Any = transformers.LlavaProcessor
    shard_layers = (LlamaDecoderLayer, CLIPEncoderLayer)

    @classmethod
    def build_tiny(cls, cfg: BackboneConfig) -> tuple[Any, Any]:
        t = cfg.tiny
        tokenizer = _tiny_tokenizer(["<image>"], t.vocab_size)
        vision = transformers.CLIPVisionConfig(
            hidden_size=t.vision_hidden_size,
            intermediate_size=2 * t.vision_hidden_size,
            num_hidden_layers=t.vision_layers,
            num_attention_heads=t.vision_heads,
            image_size=cfg.image_size,
            patch_size=t.patch_size,
        )
        config = transformers.LlavaConfig(
            vision_config=vision,
            text_config=transformers.LlamaConfig(**_text_config(cfg, tokenizer)),
            image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
            vision_feature_select_strategy="default",
            vision_feature_layer=-1,
        )
        torch.manual_seed(t.seed)
        model = cls.model_class(config)
        if t.patch_init == PatchInit.dct:
            init_patch_embedding(model.model.vision_tower.embeddings.patch_embedding)
        size = {"height": cfg.image_size, "width": cfg.image_size}
        image_processor = transformers.CLIPImageProcessorPil(
            size=size, crop_size=size, do_center_crop=False
        )
        processor = cls.processor_class(
            image_processor=image_processor,
            tokenizer=tokenizer,
            patch_size=t.patch_size,
            vision_feature_select_strategy="default",
            num_additional_image_tokens=1,
        )
        return model, processor


FAMILIES: dict[BackboneFamily, type[ChecklistBackbone]] = {
    BackboneFamily.qwen2_vl: QwenVLBackbone,
    BackboneFamily.qwen2_5_vl: Qwen2_5_VLBackbone,
    BackboneFamily.llava: LlavaBackbone,
}


def _load_pretrained(family: type[ChecklistBackbone], cfg: BackboneConfig) -> tuple[Any, Any]:
    source = cfg.name_or_path
    require_model_folder(source, "backbone.name_or_path")
    check_model_folder(
        source, trust_remote_code=cfg.trust_remote_code, opt_in="backbone.trust_remote_code=true"
    )
    kwargs = {
        "local_files_only": cfg.local_files_only,
        "trust_remote_code": cfg.trust_remote_code,
    }
    try:
        model = family.model_class.from_pretrained(
            source, dtype=DTYPES[cfg.dtype], use_safetensors=True, **kwargs
        )
        processor = family.processor_class.from_pretrained(source, **kwargs)
    except (OSError, ValueError, SafetensorError) as err:
        if Path(source).exists():
            raise BackboneError(f"cannot load backbone {cfg.name!r} from {source}: {err}") from err
        raise BackboneError(
            f"backbone {cfg.name!r}: weights for {source!r} are not on this machine and downloading is "
            f"off (backbone.local_files_only=true). Fetch them where there is network, e.g. "
            f"`hf download {source} --local-dir DIR` (huggingface_hub's CLI), then run with "
            f"backbone.name_or_path=DIR, or set backbone.local_files_only=false to let transformers "
            f"download them."
        ) from err
    return model, processor


def build_backbone(cfg: BackboneConfig) -> ChecklistBackbone:
    """The backbone a config describes: tiny from config, or real weights from a hub id or folder."""
    family = FAMILIES[cfg.family]
    if cfg.name_or_path is None:
        model, processor = family.build_tiny(cfg)
        model = model.to(DTYPES[cfg.dtype])
    else:
        model, processor = _load_pretrained(family, cfg)
    if cfg.lora.enabled:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=cfg.lora.r,
            lora_alpha=cfg.lora.alpha,
            lora_dropout=cfg.lora.dropout,
            target_modules=list(cfg.lora.target_modules),
        )
        model = get_peft_model(model, lora)
    return family(model, processor, cfg)


def load_backbone(directory: str | Path, **overrides: Any) -> ChecklistBackbone:
    """Reload a folder written by :meth:`ChecklistBackbone.save_pretrained`.

    ``overrides`` are BackboneConfig fields (``dtype``, ``question_batch_size``, ``lora``, the load
    switches ``local_files_only`` and ``trust_remote_code``); the folder's own load switches, if an
    old folder has them, are ignored, and a folder that sets ``trust_remote_code`` itself is
    refused unless the caller opted in (docs/security.md)."""
    directory = Path(directory)
    settings_file = directory / BACKBONE_FILE
    if not settings_file.is_file():
        raise BackboneError(
            f"{directory} is not a vrexp checklist model folder (no {BACKBONE_FILE}); train one with "
            "`python run.py task=train_checklist`"
        )
    _, saved = check_format(directory, json.loads(settings_file.read_text()))
    if "name_or_path" in overrides:
        raise BackboneError(f"load_backbone({directory}): the folder is the weights' source")
    refuse_folder_switches(
        settings_file, saved, LOAD_SWITCHES, granted=bool(overrides.get("trust_remote_code"))
    )
    saved = {k: v for k, v in saved.items() if k not in LOAD_SWITCHES}
    frames = saved.get("frames") or {}
    if "select" not in frames and frames.get("fps") is not None:
        # Folders from before frames.select sampled by rate whenever fps was set.
        frames["select"] = FrameSelection.fps.value
    settings = OmegaConf.merge(OmegaConf.structured(BackboneConfig), saved, overrides)
    settings.name_or_path = str(directory)
    return build_backbone(OmegaConf.to_object(settings))
