"""Generators: noise-schedule targets, the space-to-depth codec, the tiny families, LoRA, the
real-size families (SDXL, CogVideoX-2B) on tiny configs of the same classes, and DPOModule steps."""

from __future__ import annotations

import math
import re
import time
from pathlib import Path

import diffusers
import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    T5Config,
    T5EncoderModel,
)

from tests.conftest import CONF
from vrexp.backbones.tokenizer import train_tokenizer, training_corpus
from vrexp.configs import DPOConfig, GeneratorConfig, OptimSettings
from vrexp.data.generation import GenerationDataModule
from vrexp.generators import (
    PREDICTION_TYPES,
    CogVideoXGenerator,
    GeneratorError,
    NoiseSchedule,
    SDXLGenerator,
    SpaceToDepth,
    VaeCodec,
    build_generator,
    from_unit,
    load_generator,
    to_unit,
)
from vrexp.modules import DPOModule

PROMPTS = ["one red circle on a sky background", "two blue squares"]
LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
# The shipped tiny configs, shrunk: 16 x 16 media, a 4 x 4 x 48 space-to-depth latent.
TINY = {
    "tiny_sd": {
        "image_size": 16,
        "num_inference_steps": 2,
        "tiny": {
            "block_out_channels": [32, 32],
            "norm_num_groups": 32,
            "attention_head_dim": 8,
            "text_hidden_size": 32,
            "text_layers": 1,
            "vocab_size": 300,
        },
    },
    "tiny_video": {
        "image_size": 16,
        "num_frames": 3,
        "num_inference_steps": 2,
        "tiny": {
            "num_layers": 1,
            "num_heads": 2,
            "head_dim": 8,
            "time_embed_dim": 16,
            "text_hidden_size": 32,
            "text_layers": 1,
            "vocab_size": 300,
        },
    },
}

DPO = DPOConfig(name="mpo")  # beta 500, no SFT mixing


pytestmark = pytest.mark.usefixtures("one_thread")


def generator_config(name: str, **overrides) -> GeneratorConfig:
    """``conf/generator/<name>.yaml`` on the schema, with overrides (as Hydra would merge them)."""
    raw = yaml.safe_load((CONF / "generator" / f"{name}.yaml").read_text())
    raw.pop("defaults", None)
    return OmegaConf.to_object(
        OmegaConf.merge(OmegaConf.structured(GeneratorConfig), raw, TINY.get(name, {}), overrides)
    )


def random_pairs(shape: tuple[int, ...], n: int = 2, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [
        {
            "winner": rng.integers(0, 256, shape, dtype=np.uint8),
            "loser": rng.integers(0, 256, shape, dtype=np.uint8),
            "prompt": PROMPTS[i % len(PROMPTS)],
        }
        for i in range(n)
    ]


def fit_steps(module: pl.LightningModule, pairs: list[dict], root: Path, steps: int = 1):
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=root,
    )
    trainer.fit(module, datamodule=GenerationDataModule(pairs, batch_size=len(pairs)))
    return trainer


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def changed(module: torch.nn.Module, before: dict[str, torch.Tensor]) -> set[str]:
    return {n for n, p in module.named_parameters() if not torch.equal(p, before[n])}


def probe(generator, seed: int = 0):
    """Fixed denoiser inputs: latents, timesteps and the prompts' conditioning."""
    latents = torch.randn(generator.latent_shape(2), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return latents, torch.tensor([10, 700]), generator.encode_prompts(PROMPTS)


def predict(generator, inputs) -> torch.Tensor:
    with torch.no_grad():
        return generator.denoise(*inputs)


# ------------------------------------------------------------------------------ schedules
SCHEDULES = {kind: NoiseSchedule.create(kind) for kind in PREDICTION_TYPES}


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(PREDICTION_TYPES),
    timesteps=st.lists(st.integers(0, 999), min_size=1, max_size=4),
    video=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_targets_give_back_the_clean_latents(kind, timesteps, video, seed):
    schedule = SCHEDULES[kind]
    g = torch.Generator().manual_seed(seed)
    shape = (len(timesteps), *((3,) if video else ()), 5, 2, 2)
    clean = torch.randn(shape, generator=g, dtype=torch.float64)
    noise = torch.randn(shape, generator=g, dtype=torch.float64)
    t = torch.tensor(timesteps)
    noisy, t_in, target = schedule.noisy_and_target(clean, noise, t)
    assert noisy.shape == target.shape == shape
    per_sample = (-1, *([1] * (len(shape) - 1)))
    if kind == "flow":
        sigma = ((t.double() + 1) / schedule.num_train_timesteps).view(per_sample)
        recovered = noisy - sigma * target
        torch.testing.assert_close(t_in.double(), t.double() + 1)
    else:
        ab = schedule.scheduler.alphas_cumprod[t].double().view(per_sample)
        if kind == "epsilon":
            torch.testing.assert_close(target, noise, rtol=0, atol=0)
            recovered = (noisy - (1 - ab).sqrt() * target) / ab.sqrt()
        else:
            recovered = ab.sqrt() * noisy - (1 - ab).sqrt() * target
        assert torch.equal(t_in, t)
    torch.testing.assert_close(recovered, clean, rtol=0, atol=1e-7)


def test_unknown_prediction_types_are_named():
    with pytest.raises(ValueError, match="'sample'"):
        NoiseSchedule.create("sample")
    with pytest.raises(ValueError, match="'sample'"):
        NoiseSchedule(diffusers.DDPMScheduler(prediction_type="sample"))


def test_inference_only_schedulers_train_as_ddpm_on_the_same_betas():
    euler = diffusers.EulerDiscreteScheduler(beta_schedule="scaled_linear", steps_offset=1)
    schedule = NoiseSchedule.for_training(euler)
    assert type(schedule.scheduler) is diffusers.DDPMScheduler
    torch.testing.assert_close(schedule.scheduler.alphas_cumprod, euler.alphas_cumprod)
    assert isinstance(schedule.sampler(), diffusers.DDIMScheduler)
    cog = diffusers.CogVideoXDDIMScheduler(prediction_type="v_prediction")
    kept = NoiseSchedule.for_training(cog)
    assert kept.scheduler is cog and kept.prediction_type == "v_prediction"
    assert type(kept.sampler()) is diffusers.CogVideoXDDIMScheduler
    flow = NoiseSchedule.for_training(diffusers.FlowMatchEulerDiscreteScheduler())
    assert flow.prediction_type == "flow"
    assert isinstance(flow.sampler(), diffusers.FlowMatchEulerDiscreteScheduler)


# ------------------------------------------------------------------------------ codec
@settings(max_examples=60, deadline=None)
@given(
    factor=st.integers(1, 4),
    batch=st.integers(1, 2),
    frames=st.one_of(st.none(), st.integers(1, 3)),
    blocks=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    seed=st.integers(0, 2**16),
)
def test_space_to_depth_is_lossless(factor, batch, frames, blocks, seed):
    h, w = blocks[0] * factor, blocks[1] * factor
    shape = (batch, *(() if frames is None else (frames,)), h, w, 3)
    media = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    codec = SpaceToDepth(factor)
    latents = codec.encode(to_unit(media))
    assert latents.shape == (*shape[:-3], codec.latent_channels(), blocks[0], blocks[1])
    assert codec.latent_channels() == 3 * factor**2
    np.testing.assert_array_equal(from_unit(codec.decode(latents)), media)


def test_codec_rejects_bad_sizes_and_media():
    with pytest.raises(ValueError, match=r"\(6, 8\) is not divisible by space_to_depth=4"):
        SpaceToDepth(4).encode(torch.zeros(1, 3, 6, 8))
    with pytest.raises(ValueError, match="factor must be >= 1"):
        SpaceToDepth(0)
    with pytest.raises(ValueError, match="uint8"):
        to_unit(np.zeros((1, 4, 4, 3), dtype=np.float32))


# ------------------------------------------------------------------------------ tiny families
@pytest.mark.parametrize(
    ("name", "prediction_type"),
    [("tiny_sd", "epsilon"), ("tiny_sd", "flow"), ("tiny_video", "v_prediction")],
)
def test_tiny_generators_sample_reproducibly_and_round_trip(name, prediction_type, tmp_path):
    generator = build_generator(generator_config(name, prediction_type=prediction_type))
    video = name == "tiny_video"
    expected = (2, 3, 16, 16, 3) if video else (2, 16, 16, 3)
    # As in a DPO run: the denoiser trains, its frozen text encoder stays in eval mode.
    generator.train()
    generator.text_encoders.eval()
    modes = {name: m.training for name, m in generator.named_modules()}
    media = generator.generate(PROMPTS, [1, 2])
    assert media.shape == expected and media.dtype == np.uint8
    assert {name: m.training for name, m in generator.named_modules()} == modes
    assert generator.denoiser.training and not generator.text_encoders[0].training
    generator.eval()
    again = generator.generate(PROMPTS, [1, 2])
    assert not generator.training and not any(m.training for m in generator.modules())
    np.testing.assert_array_equal(again, media)
    other = generator.generate(PROMPTS, [3, 4])
    assert (other != media).any(axis=tuple(range(1, media.ndim))).all()
    with pytest.raises(GeneratorError, match="2 prompts but 1 seeds"):
        generator.generate(PROMPTS, [1])
    with pytest.raises(GeneratorError, match=f"rank {5 if video else 4}"):
        generator.encode_media(np.zeros((16, 16, 3), dtype=np.uint8))

    generator.save_pretrained(tmp_path / "gen")
    denoiser = "transformer" if video else "unet"
    assert {p.name for p in (tmp_path / "gen").iterdir()} >= {
        "vrexp_generator.json",
        denoiser,
        "text_encoder",
        "tokenizer",
        "scheduler",
    }
    loaded = load_generator(tmp_path / "gen").eval()
    assert type(loaded) is type(generator) and isinstance(loaded.codec, SpaceToDepth)
    assert loaded.schedule.prediction_type == prediction_type
    np.testing.assert_array_equal(loaded.generate(PROMPTS, [1, 2]), media)


def test_load_generator_names_a_folder_that_is_not_one(tmp_path):
    (tmp_path / "unet").mkdir()
    with pytest.raises(GeneratorError, match=re.escape(str(tmp_path))) as err:
        load_generator(tmp_path)
    assert "vrexp_generator.json" in str(err.value)


def test_lora_trains_alone_disables_to_the_base_and_merges_into_a_folder(tmp_path):
    generator = build_generator(generator_config("tiny_sd")).eval()
    inputs = probe(generator)
    base = predict(generator, inputs)
    with pytest.raises(GeneratorError, match="needs LoRA adapters"), generator.adapters_disabled():
        pass
    generator.add_lora(4, 4, LORA_TARGETS)
    assert generator.has_lora
    trainable = {n for n, p in generator.denoiser.named_parameters() if p.requires_grad}
    lora = {n for n, _ in generator.denoiser.named_parameters() if ".lora_" in n}
    assert trainable == lora and len(lora) > 0
    # B starts at zero: the adapted model is the base until it trains.
    torch.testing.assert_close(predict(generator, inputs), base, rtol=0, atol=0)
    with torch.no_grad():
        for n, p in generator.denoiser.named_parameters():
            if ".lora_B" in n:
                p.normal_(std=0.2, generator=torch.Generator().manual_seed(len(n)))
    tuned = predict(generator, inputs)
    assert (tuned - base).abs().max() > 1e-3
    with generator.adapters_disabled():
        torch.testing.assert_close(predict(generator, inputs), base, rtol=0, atol=1e-6)
    torch.testing.assert_close(predict(generator, inputs), tuned, rtol=0, atol=0)

    with pytest.raises(GeneratorError, match="merge_lora"):
        generator.save_pretrained(tmp_path / "unmerged")
    assert not (tmp_path / "unmerged" / "vrexp_generator.json").exists()
    generator.merge_lora()
    assert not generator.has_lora
    assert not any(".lora_" in n for n, _ in generator.named_parameters())
    generator.save_pretrained(tmp_path / "merged")
    loaded = load_generator(tmp_path / "merged").eval()
    assert not loaded.has_lora
    torch.testing.assert_close(predict(loaded, probe(loaded)), tuned, rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------ real-size families
def tiny_tokenizer(folder: Path, *subfolders: str):
    tokenizer = train_tokenizer(training_corpus(CONF / "dimensions"), [], 300)
    tokenizer.model_max_length = 16
    for sub in subfolders:
        tokenizer.save_pretrained(folder / sub)
    return tokenizer


def clip_config(tokenizer, **kwargs) -> CLIPTextConfig:
    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=16,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **kwargs,
    )


@pytest.fixture(scope="module")
def sdxl_folder(tmp_path_factory) -> Path:
    """SDXL's diffusers layout with its own classes at toy sizes and an inference scheduler."""
    folder = tmp_path_factory.mktemp("sdxl")
    torch.manual_seed(0)
    tokenizer = tiny_tokenizer(folder, "tokenizer", "tokenizer_2")
    diffusers.UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=64,  # both encoders' hidden states, concatenated
        attention_head_dim=8,
        norm_num_groups=32,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=32 + 6 * 8,  # pooled text + 6 time ids
    ).save_pretrained(folder / "unet")
    CLIPTextModel(clip_config(tokenizer)).save_pretrained(folder / "text_encoder")
    CLIPTextModelWithProjection(clip_config(tokenizer, projection_dim=32)).save_pretrained(
        folder / "text_encoder_2"
    )
    diffusers.AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(8, 16),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=16,
    ).save_pretrained(folder / "vae")
    diffusers.EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1
    ).save_pretrained(folder / "scheduler")
    return folder


@pytest.fixture(scope="module")
def cogvideox_folder(tmp_path_factory) -> Path:
    """CogVideoX-2B's layout (3-D VAE, T5, v-prediction DDIM) at toy sizes."""
    folder = tmp_path_factory.mktemp("cogvideox")
    torch.manual_seed(0)
    tokenizer = tiny_tokenizer(folder, "tokenizer")
    diffusers.CogVideoXTransformer3DModel(
        num_attention_heads=2,
        attention_head_dim=8,
        in_channels=4,
        out_channels=4,
        time_embed_dim=8,
        text_embed_dim=32,
        num_layers=1,
        sample_width=2,
        sample_height=2,
        sample_frames=9,
        patch_size=2,
        temporal_compression_ratio=4,
        max_text_seq_length=16,
    ).save_pretrained(folder / "transformer")
    T5EncoderModel(
        T5Config(
            vocab_size=len(tokenizer),
            d_model=32,
            d_kv=8,
            d_ff=64,
            num_layers=1,
            num_heads=4,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            dropout_rate=0.0,
        )
    ).save_pretrained(folder / "text_encoder")
    diffusers.AutoencoderKLCogVideoX(
        down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=2,
        temporal_compression_ratio=4,
    ).save_pretrained(folder / "vae")
    diffusers.CogVideoXDDIMScheduler(
        prediction_type="v_prediction",
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        rescale_betas_zero_snr=True,
        timestep_spacing="trailing",
    ).save_pretrained(folder / "scheduler")
    return folder


def assert_one_lora_dpo_step(generator, media_shape, root):
    """A real Trainer step of DPOModule with the LoRA reference: the adapters move, the base
    (denoiser, text encoders, VAE) does not, and at step 0 the loss is exactly log 2."""
    module = DPOModule(generator, OptimSettings(lr=1e-3, warmup_steps=0), DPO, reference="lora")
    before = snapshot(generator)
    trainer = fit_steps(module, random_pairs(media_shape), root)
    assert trainer.global_step == 1
    moved = changed(generator, before)
    assert moved and all(".lora_" in n for n in moved)
    assert float(trainer.callback_metrics["train/dpo_loss"]) == pytest.approx(math.log(2), abs=1e-6)


def test_sdxl_loads_from_a_folder_and_trains_lora_with_dpo(sdxl_folder, tmp_path):
    generator = build_generator(
        generator_config(
            "sdxl",
            name_or_path=str(sdxl_folder),
            dtype="float32",
            image_size=16,
            num_inference_steps=2,
        )
    )
    assert isinstance(generator, SDXLGenerator) and len(generator.text_encoders) == 2
    assert isinstance(generator.codec, VaeCodec) and generator.has_lora
    # Euler samples but cannot train: the DDPM on the same betas replaces it.
    scheduler = generator.schedule.scheduler
    euler = diffusers.EulerDiscreteScheduler.from_pretrained(sdxl_folder, subfolder="scheduler")
    assert type(scheduler) is diffusers.DDPMScheduler
    torch.testing.assert_close(scheduler.alphas_cumprod, euler.alphas_cumprod)
    assert generator.latent_shape(1) == (1, 4, 8, 8)
    cond = generator.encode_prompts(PROMPTS)
    assert cond["encoder_hidden_states"].shape == (2, 16, 64)
    assert cond["text_embeds"].shape == (2, 32)
    assert cond["time_ids"].tolist() == [[16, 16, 0, 0, 16, 16]] * 2
    media = generator.generate(PROMPTS[:1], [0])
    assert media.shape == (1, 16, 16, 3) and media.dtype == np.uint8
    assert_one_lora_dpo_step(generator, (16, 16, 3), tmp_path)


def test_cogvideox_loads_from_a_folder_and_trains_lora_with_dpo(cogvideox_folder, tmp_path):
    generator = build_generator(
        generator_config(
            "cogvideox_2b",
            name_or_path=str(cogvideox_folder),
            dtype="float32",
            image_size=16,
            num_frames=9,
            num_inference_steps=2,
        )
    )
    assert isinstance(generator, CogVideoXGenerator) and generator.has_lora
    assert isinstance(generator.codec, VaeCodec) and generator.codec.video
    assert type(generator.schedule.scheduler) is diffusers.CogVideoXDDIMScheduler
    assert generator.schedule.prediction_type == "v_prediction"
    assert generator.latent_shape(1) == (1, 3, 4, 2, 2)  # 9 frames -> 3 latent frames
    media = generator.generate(PROMPTS[:1], [0])
    assert media.shape == (1, 9, 16, 16, 3) and media.dtype == np.uint8
    assert_one_lora_dpo_step(generator, (9, 16, 16, 3), tmp_path)


@pytest.mark.parametrize("name", ["sdxl", "cogvideox_2b"])
def test_missing_checkpoints_fail_fast_saying_how_to_provide_them(name):
    start = time.perf_counter()
    with pytest.raises(GeneratorError) as err:
        build_generator(
            generator_config(
                name, name_or_path="vrexp-tests/not-on-this-machine", local_files_only=True
            )
        )
    assert time.perf_counter() - start < 10
    message = str(err.value)
    assert "vrexp-tests/not-on-this-machine" in message
    assert "generator.name_or_path" in message and "local_files_only" in message


# ------------------------------------------------------------------------------ DPOModule
def test_copy_reference_stays_frozen_while_the_policy_trains(tmp_path):
    generator = build_generator(generator_config("tiny_sd"))
    with pytest.raises(ValueError, match="reference='lora'"):
        DPOModule(generator, OptimSettings(), DPO, reference="lora")
    with pytest.raises(ValueError, match="reference must be one of"):
        DPOModule(generator, OptimSettings(), DPO, reference="ema")
    module = DPOModule(generator, OptimSettings(lr=1e-3, warmup_steps=0), DPO, reference="copy")
    reference = module.reference
    assert reference is not generator.denoiser
    assert not any(p.requires_grad for p in reference.parameters())
    policy_before, reference_before = snapshot(generator.denoiser), snapshot(reference)
    for n, p in reference_before.items():
        assert torch.equal(p, policy_before[n])
    text_before = snapshot(generator.text_encoders)
    trainer = fit_steps(module, random_pairs((16, 16, 3)), tmp_path)
    optimized = {id(p) for group in trainer.optimizers[0].param_groups for p in group["params"]}
    assert optimized == {id(p) for p in generator.denoiser.parameters()}
    assert not changed(reference, reference_before)
    assert len(changed(generator.denoiser, policy_before)) > len(policy_before) // 2
    assert not changed(generator.text_encoders, text_before)


def test_dpo_starts_at_log2_keeps_its_lora_reference_and_mixes_in_sft(tmp_path):
    generator = build_generator(generator_config("tiny_sd"))
    generator.add_lora(4, 4, LORA_TARGETS)
    module = DPOModule(
        generator,
        OptimSettings(lr=1e-2, warmup_steps=0),
        DPOConfig(name="mpo", sft_weight=0.7),
        reference="lora",
    )
    assert {n for n, p in module.named_parameters() if p.requires_grad} == {
        n for n, _ in module.named_parameters() if ".lora_" in n
    }
    inputs = probe(generator)
    with torch.no_grad(), generator.adapters_disabled():
        base = generator.denoise(*inputs)
    trainer = fit_steps(module, random_pairs((16, 16, 3)), tmp_path)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    # Zero-initialised LoRA B: the policy is the reference, so every pair's margin is 0.
    assert metrics["train/dpo_loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert metrics["train/implicit_acc"] == 0.5
    assert metrics["train/sft_loss"] > 0
    assert metrics["train/loss"] == pytest.approx(
        metrics["train/dpo_loss"] + 0.7 * metrics["train/sft_loss"], rel=1e-6
    )
    # The step moved the adapters; the reference (adapters off) is still the base.
    generator.eval()
    assert (predict(generator, inputs) - base).abs().max() > 1e-6
    torch.testing.assert_close(module.reference_prediction(*inputs), base, rtol=0, atol=0)
    # A pair shares its noise and timestep: identical winner and loser tie exactly, however far
    # the policy has moved from the reference.
    twins = random_pairs((16, 16, 3))
    winners = torch.from_numpy(np.stack([p["winner"] for p in twins]))
    with torch.no_grad():
        tie = module.dpo_step({"winner": winners, "loser": winners, "prompt": PROMPTS})
    assert float(tie["dpo_loss"][1]) == pytest.approx(math.log(2), abs=1e-6)
    assert float(tie["implicit_acc"][1]) == 0.5
