"""``trainer=fsdp``: what a CPU can check (docs/distributed.md §4).

Lightning's FSDP strategy (torch FSDP1) does not run on CPU: Lightning refuses ``accelerator=cpu``
("The strategy `fsdp` requires a GPU accelerator") and torch itself stops in ``FSDP(...)``
("FSDP needs a non-CPU accelerator device"). So these tests check the parts before the GPU: the
config composes and validates, every family names the blocks FSDP wraps, those are real classes
that the tiny models contain (so the wrap policy finds units), and the strategy is built with
them as its wrap and activation-checkpointing policies and with ``trainer.fsdp``'s settings.
"""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf
from torch import nn
from torch.distributed.fsdp import ShardingStrategy

from vrexp.backbones import build_backbone
from vrexp.backbones.families import FAMILIES as BACKBONE_FAMILIES
from vrexp.configs import validate_config
from vrexp.configs.checks import ConfigValueError
from vrexp.configs.choices import BackboneFamily, GeneratorFamily
from vrexp.generators import FAMILIES as GENERATOR_FAMILIES
from vrexp.generators import build_generator
from vrexp.modules.trainer import trainer_arguments

TINY = {
    "qwen2_vl": ("backbone=tiny_qwen2_vl",),
    "qwen2_5_vl": ("backbone=tiny_qwen2_vl", "backbone.family=qwen2_5_vl"),
    "llava": ("backbone=tiny_llava",),
    "sd": ("generator=tiny_sd",),
    "cogvideox": ("generator=tiny_video",),
}


def test_every_family_names_real_blocks_to_shard():
    for family in BackboneFamily:
        layers = BACKBONE_FAMILIES[family].shard_layers
        assert layers and all(issubclass(c, nn.Module) for c in layers), family
    for family in GeneratorFamily:
        layers = GENERATOR_FAMILIES[family].shard_layers
        assert layers and all(issubclass(c, nn.Module) for c in layers), family
    names = {c.__name__ for c in BACKBONE_FAMILIES[BackboneFamily.llava].shard_layers}
    assert names == {"LlamaDecoderLayer", "CLIPEncoderLayer"}
    names = {c.__name__ for c in GENERATOR_FAMILIES[GeneratorFamily.cogvideox].shard_layers}
    assert "CogVideoXBlock" in names


@pytest.mark.parametrize("family", list(TINY))
def test_the_tiny_models_contain_the_blocks_fsdp_wraps(family, compose_cfg, one_thread):
    cfg = compose_cfg("debug=smoke", *TINY[family])
    if family in GeneratorFamily.values():
        generator = build_generator(OmegaConf.to_object(cfg.generator))
        layers, model = type(generator).shard_layers, generator
    else:
        backbone = build_backbone(OmegaConf.to_object(cfg.backbone))
        layers, model = type(backbone).shard_layers, backbone.model
    present = {type(m) for m in model.modules()}
    # The language decoder and the vision tower (the denoiser's blocks and the text encoder's
    # layers) are units: every class the family names is in its model.
    assert set(layers) <= present, (family, sorted(c.__name__ for c in set(layers) - present))


def test_the_fsdp_strategy_wraps_and_checkpoints_the_family_blocks(compose_cfg):
    cfg = compose_cfg(
        "task=train_checklist",
        "trainer=fsdp",
        "trainer.fsdp.sharding_strategy=HYBRID_SHARD",
        "trainer.fsdp.cpu_offload=true",
    )
    validate_config(cfg)
    layers = BACKBONE_FAMILIES[BackboneFamily.qwen2_5_vl].shard_layers
    strategy = trainer_arguments(cfg.trainer, layers)["strategy"]
    assert type(strategy).__name__ == "FSDPStrategy"
    assert strategy.kwargs["auto_wrap_policy"]._module_classes == set(layers)
    checkpointed = strategy._activation_checkpointing_kwargs["auto_wrap_policy"]
    assert checkpointed._module_classes == set(layers)
    assert strategy.sharding_strategy == ShardingStrategy.HYBRID_SHARD
    assert strategy.cpu_offload.offload_params
    assert cfg.trainer.precision == "bf16-mixed" and "fsdp" not in trainer_arguments(
        cfg.trainer, layers
    )
    # Without activation checkpointing the policy is left out.
    off = compose_cfg("trainer=fsdp", "trainer.fsdp.activation_checkpointing=false")
    assert not trainer_arguments(off.trainer, layers)["strategy"]._activation_checkpointing_kwargs


def test_fsdp_settings_are_checked_and_a_model_without_blocks_is_refused(compose_cfg):
    with pytest.raises(Exception, match="sharding_strategy"):
        validate_config(
            compose_cfg(
                "task=train_checklist", "trainer=fsdp", "trainer.fsdp.sharding_strategy=HALF"
            )
        )
    with pytest.raises(ConfigValueError, match=r"trainer\.strategy=fsdp"):
        trainer_arguments(compose_cfg("trainer=fsdp").trainer, ())
