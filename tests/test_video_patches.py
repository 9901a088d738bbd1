"""Native Qwen video input: the temporal-patch layout built from the image processor."""

from __future__ import annotations

import numpy as np
import pytest
import transformers
from hypothesis import given, settings
from hypothesis import strategies as st

from vrexp.backbones.video import video_patches

PATCH, MERGE, TEMPORAL = 14, 2, 2


@pytest.fixture(scope="module")
def image_processor():
    return transformers.Qwen2VLImageProcessorPil(
        min_pixels=56 * 56, max_pixels=56 * 56, patch_size=PATCH
    )


def random_frames(count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (56, 56, 3), dtype=np.uint8) for _ in range(count)]


@settings(max_examples=15, deadline=None)
@given(distinct=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_a_clip_of_repeated_frame_pairs_equals_its_frames_as_images(
    image_processor, distinct, seed
):
    # The image processor fills the temporal axis by copying the frame, so a clip whose frames
    # come in equal pairs must give exactly the image patches, in the same token order.
    frames = random_frames(distinct, seed)
    patches, grid = video_patches(image_processor, [f for f in frames for _ in range(TEMPORAL)])
    images = image_processor(images=frames, return_tensors="np")
    assert grid == (distinct, 4, 4)
    np.testing.assert_array_equal(patches, images["pixel_values"])


def test_each_token_holds_its_frames_in_time_order(image_processor):
    # Frame i is a flat grey of value 20 * i, so every pixel of a patch names its frame.
    frames = [np.full((56, 56, 3), 20 * i, dtype=np.uint8) for i in range(5)]
    patches, (grid_t, grid_h, grid_w) = video_patches(image_processor, frames)
    assert (grid_t, grid_h, grid_w) == (3, 4, 4)  # 5 frames -> the last is repeated to fill 3 x 2
    mean = np.asarray(image_processor.image_mean)
    std = np.asarray(image_processor.image_std)
    # [token, channel, time, row, column]
    tokens = patches.reshape(grid_t * grid_h * grid_w, 3, TEMPORAL, PATCH, PATCH)
    for token in range(len(tokens)):
        t = token // (grid_h * grid_w)
        for k in range(TEMPORAL):
            frame = min(TEMPORAL * t + k, 4)
            expected = (20 * frame / 255 - mean) / std
            np.testing.assert_allclose(
                tokens[token, :, k].mean(axis=(1, 2)), expected, atol=1e-5, rtol=0
            )


def test_frames_of_different_sizes_are_rejected():
    processor = transformers.Qwen2VLImageProcessorPil(patch_size=PATCH)  # keeps each frame's size
    frames = [np.zeros((56, 56, 3), np.uint8), np.zeros((112, 56, 3), np.uint8)]
    with pytest.raises(ValueError, match="share one size"):
        video_patches(processor, frames)
