"""Backbone adapters: cached P(yes) equals a full forward, save/load, LoRA, real-size configs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from tests.conftest import compose_config
from vrexp.backbones import BackboneError, build_backbone, load_backbone
from vrexp.backbones.base import BACKBONE_FILE
from vrexp.backbones.media import to_frames
from vrexp.backbones.patch_init import dct_patch_weight
from vrexp.configs import FrameSampling
from vrexp.media import Clip

QUESTIONS = [
    "Is the image very clear?",
    "Are the colors bright?",
    'Does the image fully show "two red circles on a sky background, with a smiley face"?',
    "Is the face completely correct?",
]


def backbone_config(tmp_path, name: str, *overrides: str):
    cfg = compose_config(tmp_path, f"backbone={name}", *overrides)
    return OmegaConf.to_object(cfg.backbone)


BACKBONES = {
    "qwen2_vl": ("tiny_qwen2_vl",),
    "qwen2_vl_frames": ("tiny_qwen2_vl", "backbone.frames.native=false"),
    "qwen2_vl_video_recipe": ("tiny_qwen2_vl", "dataset=synthworld_video"),  # 8 frames per token
    "qwen2_5_vl": ("tiny_qwen2_vl", "backbone.family=qwen2_5_vl", "backbone.name=tiny_qwen2_5_vl"),
    "llava": ("tiny_llava",),
}


@pytest.fixture(scope="module", params=list(BACKBONES))
def backbone(request, tmp_path_factory):
    cfg = backbone_config(tmp_path_factory.mktemp("bb"), *BACKBONES[request.param])
    return build_backbone(cfg).eval()


def media_batch(kind: str, n: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    shape = (64, 64, 3) if kind == "image" else (8, 64, 64, 3)
    return [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(n)]


@pytest.mark.parametrize("kind", ["image", "video"])
def test_cached_answers_equal_a_full_forward(backbone, kind):
    media = media_batch(kind)
    per_item = [
        [q.replace("two red", f"{i + 1} red") for q in QUESTIONS] for i in range(len(media))
    ]
    with torch.inference_mode():
        cached = backbone.answer(media, per_item)
        full = torch.stack(
            [
                torch.stack([torch.sigmoid(backbone.full_log_odds(m, q)) for q in qs])
                for m, qs in zip(media, per_item, strict=True)
            ]
        )
    assert cached.shape == (3, len(QUESTIONS))
    torch.testing.assert_close(cached, full, atol=1e-4, rtol=0)
    assert cached.std() > 1e-5  # the answers depend on the input


@pytest.mark.parametrize("kind", ["image", "video"])
def test_items_processed_alone_concatenate_to_the_batch(backbone, kind):
    # What lets a data pipeline process each item once and cache it (ChecklistDataModule).
    media = media_batch(kind)
    whole = backbone.process(media)
    alone = [backbone.process([m]) for m in media]
    assert whole.keys() == alone[0].keys()
    for key, value in whole.items():
        assert torch.equal(torch.cat([a[key] for a in alone]), value), key


def test_question_chunking_does_not_change_answers(backbone):
    media = media_batch("image")
    with torch.inference_mode():
        whole = backbone.answer_logits(media, QUESTIONS)
        backbone.config.question_batch_size = 2
        try:
            chunked = backbone.answer_logits(media, QUESTIONS)
        finally:
            backbone.config.question_batch_size = 256
    torch.testing.assert_close(whole, chunked, atol=1e-5, rtol=0)


def test_p_yes_is_the_softmax_over_yes_and_no_logits(backbone):
    media = media_batch("image", 1)
    inputs = backbone.full_inputs(media[0], QUESTIONS[0])
    with torch.inference_mode():
        logits = backbone.model(**inputs).logits[0, -1]
        expected = torch.softmax(logits[[backbone.yes_ids[0], backbone.no_ids[0]]], -1)[0]
        got = backbone.answer(media, QUESTIONS[:1])[0, 0]
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)


def test_vision_parameters_are_exactly_the_vision_tower(backbone):
    names = {id(p): n for n, p in backbone.named_parameters()}
    vision = {names[id(p)] for p in backbone.vision_parameters()}
    tower = "vision_tower" if backbone.family == "llava" else "visual"
    assert vision == {n for n in names.values() if f".{tower}." in n}
    assert vision and not any("language_model" in n or "lm_head" in n for n in vision)


def test_projector_parameters_are_the_projector_inside_qwen_s_tower_and_beside_llava_s(backbone):
    names = {id(p): n for n, p in backbone.named_parameters()}
    projector = {names[id(p)] for p in backbone.projector_parameters()}
    vision = {names[id(p)] for p in backbone.vision_parameters()}
    llava = backbone.family == "llava"
    part = ".multi_modal_projector." if llava else ".visual.merger."
    assert projector and projector == {n for n in names.values() if part in n}
    # Qwen's merger is part of the vision module, so by default it learns at the tower's rate.
    assert projector.isdisjoint(vision) if llava else projector < vision


def test_save_and_reload_give_identical_answers(backbone, tmp_path):
    backbone.save_pretrained(tmp_path / "model")
    assert (tmp_path / "model" / "model.safetensors").exists()
    assert not list((tmp_path / "model").glob("*.bin"))
    again = load_backbone(tmp_path / "model").eval()
    media = media_batch("image")
    with torch.inference_mode():
        torch.testing.assert_close(
            again.answer_logits(media, QUESTIONS), backbone.answer_logits(media, QUESTIONS)
        )


def test_qwen_sends_a_clip_as_native_video_with_half_the_vision_tokens(tmp_path):
    clip = media_batch("video", 1)
    native = build_backbone(backbone_config(tmp_path, "tiny_qwen2_vl"))
    frames = build_backbone(
        backbone_config(tmp_path, "tiny_qwen2_vl", "backbone.frames.native=false")
    )
    video_inputs, frame_inputs = native.prefix_inputs(clip), frames.prefix_inputs(clip)
    assert "pixel_values" not in video_inputs and "pixel_values_videos" not in frame_inputs
    assert video_inputs["video_grid_thw"].tolist() == [[4, 4, 4]]  # 8 frames, 56 px, patch 14
    pad = native.processor.video_token_id
    assert (video_inputs["input_ids"] == pad).sum() == 4 * 4 * 4 // 4
    image_pad = frames.processor.image_token_id
    assert (frame_inputs["input_ids"] == image_pad).sum() == 8 * 4 * 4 // 4


def test_training_gradients_reach_the_vision_tower_through_the_cache(tmp_path):
    bb = build_backbone(backbone_config(tmp_path, "tiny_qwen2_vl"))
    prefix = bb.encode_prefix(media_batch("image", 2))
    item = torch.tensor([0, 0, 1])
    logits = bb.suffix_logits(prefix, item, [bb.question_text(q) for q in QUESTIONS[:3]])
    logits.sum().backward()
    grad = bb.model.model.visual.patch_embed.proj.weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_lora_trains_only_adapters_and_saves_merged_weights(tmp_path):
    bb = build_backbone(backbone_config(tmp_path, "tiny_qwen2_vl", "backbone.lora.enabled=true"))
    trainable = [n for n, p in bb.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    with torch.no_grad():
        for name, p in bb.named_parameters():
            if "lora_B" in name:
                p.add_(0.05)
    media = media_batch("image", 2)
    bb.eval()
    with torch.inference_mode():
        before = bb.answer_logits(media, QUESTIONS)
    bb.save_pretrained(tmp_path / "merged")
    merged = load_backbone(tmp_path / "merged").eval()
    assert not hasattr(merged.model, "peft_config")
    with torch.inference_mode():
        torch.testing.assert_close(
            merged.answer_logits(media, QUESTIONS), before, atol=1e-4, rtol=0
        )


@pytest.mark.parametrize("name", ["qwen2_vl_2b", "qwen2_5_vl_7b", "llava_1_5_7b"])
def test_real_size_configs_fail_fast_and_say_how_to_provide_weights(name, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache: nothing downloaded
    cfg = backbone_config(tmp_path, name)
    assert cfg.local_files_only and not cfg.trust_remote_code
    with pytest.raises(BackboneError, match=r"backbone.name_or_path=DIR"):
        build_backbone(cfg)


def test_unknown_answer_token_is_rejected(tmp_path):
    with pytest.raises(BackboneError, match="single token"):
        build_backbone(
            backbone_config(tmp_path, "tiny_qwen2_vl", "backbone.yes_tokens=[' definitely yes']")
        )


def numbered_video(count: int, size: int = 64) -> np.ndarray:
    """Frame i is a flat grey of value i, so the frames a sampling kept can be read back."""
    return np.repeat(np.arange(count, dtype=np.uint8), size * size * 3).reshape(
        count, size, size, 3
    )


def kept(frames: list[np.ndarray]) -> list[int]:
    return [int(f[0, 0, 0]) for f in frames]


def test_a_video_array_is_sampled_as_frames_source_fps_apart():
    video = numbered_video(16)
    frames = to_frames(video, 32, FrameSampling(num_frames=4))
    assert kept(frames) == [0, 5, 10, 15] and frames[0].shape == (32, 32, 3)
    # 16 frames at 8 fps span 0 .. 1.875 s: a frame every 0.5 s, the last nearest 2.0 s
    by_rate = FrameSampling(num_frames=24, select="fps", fps=2.0, source_fps=8.0)
    assert kept(to_frames(video, 64, by_rate)) == [0, 4, 8, 12, 15]
    by_rate = FrameSampling(num_frames=3, select="fps", fps=1.0, source_fps=8.0)
    assert kept(to_frames(numbered_video(100), 64, by_rate)) == [0, 8, 16]
    official = FrameSampling(num_frames=24, select="official", source_fps=25.0)
    assert kept(to_frames(numbered_video(80), 64, official)) == [0, 25, 50, 75]


def test_a_clip_is_sampled_by_its_own_times_unless_already_sampled_so():
    sampling = FrameSampling(num_frames=3)
    video = numbered_video(10)
    # Frames crowded at the start: evenly spaced in time is not evenly spaced in index.
    times = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 3.0, 6.0])
    assert kept(to_frames(Clip(video, times), 64, sampling)) == [0, 8, 9]
    # A clip its reader already sampled with this sampling reaches the model as it is.
    assert kept(to_frames(Clip(video[:3], times[:3], sampling), 64, sampling)) == [0, 1, 2]
    other = FrameSampling(num_frames=2)
    assert kept(to_frames(Clip(video[:3], times[:3], other), 64, sampling)) == [0, 1, 2]
    assert kept(to_frames(Clip(video[:3], times[:3], sampling), 64, other)) == [0, 2]


def test_qwen2_5_spaces_temporal_patches_by_the_clip_s_real_time(tmp_path):
    bb = build_backbone(
        backbone_config(
            tmp_path, "tiny_qwen2_vl", "backbone.family=qwen2_5_vl", "backbone.name=tiny_qwen2_5_vl"
        )
    )
    patch = bb.processor.image_processor.temporal_patch_size
    video = media_batch("video", 1)[0]  # 8 frames: all of them reach the model
    as_array = bb.process([video])["second_per_grid_ts"]
    at_4_fps = bb.process([Clip(video, np.arange(8) / 4.0)])["second_per_grid_ts"]
    uneven = np.array([0.0, 0.1, 0.3, 0.6, 1.0, 1.5, 2.1, 2.8])
    uneven_inputs = bb.process([Clip(video, uneven)])["second_per_grid_ts"]
    torch.testing.assert_close(as_array, torch.tensor([patch / 8.0]))  # source_fps
    torch.testing.assert_close(at_4_fps, torch.tensor([patch / 4.0]))
    torch.testing.assert_close(uneven_inputs, torch.tensor([patch * 2.8 / 7]))


def test_clips_sampled_to_different_lengths_are_batched_apart(tmp_path):
    bb = build_backbone(
        backbone_config(
            tmp_path,
            "tiny_qwen2_vl",
            "backbone.frames.select=fps",
            "backbone.frames.fps=2.0",
            "backbone.frames.num_frames=8",
        )
    ).eval()
    video = media_batch("video", 1)[0]
    video = np.concatenate([video, video[::-1]])  # 16 frames
    fast = Clip(video, np.arange(16) / 8.0)  # 2 s: 5 frames at 2 fps
    slow = Clip(video, np.arange(16) / 2.0)  # 7.5 s: the first 8 of 16 frames at 2 fps
    assert [len(bb.frames(c)) for c in (fast, slow)] == [5, 8]
    questions = [QUESTIONS[:2]] * 2
    batched = bb.answer_batched([fast, slow], questions)
    with torch.inference_mode():
        alone = [bb.answer([c], QUESTIONS[:2])[0].numpy() for c in (fast, slow)]
    np.testing.assert_allclose(batched, np.stack(alone), atol=1e-5, rtol=0)


def test_a_folder_from_before_frames_select_keeps_sampling_by_rate(tmp_path):
    bb = build_backbone(backbone_config(tmp_path, "tiny_qwen2_vl"))
    bb.save_pretrained(tmp_path / "model")
    settings_file = tmp_path / "model" / BACKBONE_FILE
    settings = json.loads(settings_file.read_text())
    settings["frames"] = {"num_frames": 24, "fps": 1.0, "source_fps": 8.0, "native": True}
    settings_file.write_text(json.dumps(settings))
    frames = load_backbone(tmp_path / "model").config.frames
    assert frames == FrameSampling(num_frames=24, select="fps", fps=1.0)


@pytest.mark.parametrize("shape", [(128, 3, 2, 16, 16), (128, 3, 8, 14, 14), (64, 3, 8, 8)])
def test_dct_patch_weight_is_an_orthogonal_basis_with_dc_at_the_patch_mean(shape):
    weight = dct_patch_weight(shape).flatten(1)
    gram = weight @ weight.T
    dc = gram.diagonal() < 0.5  # DC channels are scaled to the patch mean
    assert int(dc.sum()) == 3  # one per colour axis
    assert torch.allclose(gram.diagonal()[~dc], torch.ones(int((~dc).sum())), atol=1e-5)
    assert (gram - torch.diag(gram.diagonal())).abs().max() < 1e-5
    # A flat patch excites only the DC channels, so every other channel reads noise alone.
    flat = torch.full(shape[1:], 0.7).flatten()
    response = weight @ flat
    assert response[~dc].abs().max() < 1e-4
    assert abs(float(response[dc][0]) - 0.7 * np.sqrt(3)) < 1e-4
    # Pure grain excites every non-DC channel about equally (orthonormal: variance = sigma^2).
    noise = torch.randn(4000, flat.numel(), generator=torch.Generator().manual_seed(0)) * 0.1
    spread = (noise @ weight[~dc].T).std(dim=0)
    assert spread.min() > 0.09 and spread.max() < 0.11


def test_dct_patch_init_refuses_more_channels_than_a_patch_has():
    with pytest.raises(ValueError, match="patch_init=random"):
        dct_patch_weight((64, 3, 4, 4))


@pytest.mark.parametrize("name", ["tiny_qwen2_vl", "tiny_llava"])
def test_a_tiny_backbone_built_with_dct_patch_init_starts_from_the_basis(name, tmp_path):
    cfg = compose_config(tmp_path, f"backbone={name}", "backbone.tiny.patch_init=dct")
    backbone = build_backbone(OmegaConf.to_object(cfg.backbone))
    (weight,) = (p for n, p in backbone.base_model.named_parameters() if "patch_embed" in n)
    assert torch.equal(weight.detach(), dct_patch_weight(weight.shape))
    random = build_backbone(
        OmegaConf.to_object(
            compose_config(tmp_path, f"backbone={name}", "backbone.tiny.patch_init=random").backbone
        )
    )
    (other,) = (p for n, p in random.base_model.named_parameters() if "patch_embed" in n)
    assert not torch.equal(other.detach(), weight.detach())
