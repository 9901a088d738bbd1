"""Native Qwen-VL video input built without torchvision.

Qwen-VL encodes a video as *temporal patches*: each vision token covers ``temporal_patch_size``
consecutive frames (a 3-D convolution), so motion between those frames is seen by the patch
embedding itself, and a clip costs half the tokens of its frames sent as images. transformers'
``Qwen2VLVideoProcessor`` builds these patches but imports torchvision, which has no CPU build
(docs/stack.md §3). The layout is plain array reshaping, so it is rebuilt here on top of the
checkpoint's own *image* processor, which resizes and normalises every frame exactly as for an
image.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def video_patches(
    image_processor: Any, frames: Sequence[np.ndarray]
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Flat temporal patches [grid_t * grid_h * grid_w, C * T * P * P] of one clip, and its grid.

    The row and column order is that of transformers' Qwen2-VL video processor: frames are grouped
    in runs of ``T = temporal_patch_size`` (the last frame repeated to fill the final run), tokens
    are ordered (time, merged rows, merged columns, merge window), and a patch's features are
    (channel, time, pixel row, pixel column).
    """
    t = image_processor.temporal_patch_size
    p = image_processor.patch_size
    m = image_processor.merge_size
    frames = list(frames)
    frames += [frames[-1]] * (-len(frames) % t)
    # One temporal slot per frame: the image processor would otherwise copy each frame T times.
    out = image_processor(images=frames, return_tensors="np", temporal_patch_size=1)
    grids = out["image_grid_thw"]
    if len({tuple(g) for g in grids.tolist()}) != 1:
        raise ValueError(f"the frames of a video must share one size, got grids {grids.tolist()}")
    _, grid_h, grid_w = (int(v) for v in grids[0])
    grid_t = len(frames) // t
    patches = out["pixel_values"].reshape(grid_t, t, grid_h // m, grid_w // m, m, m, -1, p, p)
    # (t, T, gh, gw, mh, mw, C, ph, pw) -> (t, gh, gw, mh, mw, C, T, ph, pw)
    patches = patches.transpose(0, 2, 3, 4, 5, 6, 1, 7, 8)
    return patches.reshape(grid_t * grid_h * grid_w, -1), (grid_t, grid_h, grid_w)
