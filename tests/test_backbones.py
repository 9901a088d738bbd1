"""Backbone adapters: cached P(yes) equals a full forward, save/load, LoRA, real-size configs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from tests.conftest import compose_config
from vrexp.backbones import BackboneError, build_backbone, load_backbone
from vrexp.backbones.media import frame_indices, to_frames
from vrexp.configs import FrameSampling

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


def test_frame_sampling_by_count_and_by_fps():
    assert frame_indices(16, FrameSampling(num_frames=4)).tolist() == [0, 5, 10, 15]
    assert frame_indices(16, FrameSampling(num_frames=24, fps=2.0, source_fps=8.0)).tolist() == [
        0,
        4,
        8,
        12,
    ]
    assert frame_indices(100, FrameSampling(num_frames=3, fps=1.0, source_fps=8.0)).tolist() == [
        0,
        8,
        16,
    ]
    video = np.zeros((16, 64, 64, 3), dtype=np.uint8)
    frames = to_frames(video, 32, FrameSampling(num_frames=4))
    assert len(frames) == 4 and frames[0].shape == (32, 32, 3)
