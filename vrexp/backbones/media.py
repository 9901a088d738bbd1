"""Media -> the frames a backbone sees: resize to a square size, sample video frames."""

from __future__ import annotations

import numpy as np
from PIL import Image

from vrexp.configs import FrameSampling


def frame_indices(num_available: int, sampling: FrameSampling) -> np.ndarray:
    """Evenly spaced frames, or one every ``source_fps / fps`` frames when ``fps`` is set."""
    if sampling.fps:
        step = max(sampling.source_fps / sampling.fps, 1.0)
        indices = np.arange(0, num_available, step).astype(np.int64)
        return indices[: sampling.num_frames]
    count = min(sampling.num_frames, num_available)
    return np.linspace(0, num_available - 1, count).round().astype(np.int64)


def to_frames(media: np.ndarray, size: int, sampling: FrameSampling) -> list[np.ndarray]:
    """An image [H, W, 3] -> [frame]; a video [T, H, W, 3] -> sampled frames; all size x size."""
    if media.dtype != np.uint8 or media.ndim not in (3, 4) or media.shape[-1] != 3:
        raise ValueError(
            f"media must be uint8 [H, W, 3] or [T, H, W, 3], got {media.dtype} {media.shape}"
        )
    frames = [media] if media.ndim == 3 else [media[i] for i in frame_indices(len(media), sampling)]
    if frames[0].shape[:2] == (size, size):
        return frames
    return [
        np.asarray(Image.fromarray(f).resize((size, size), Image.Resampling.BILINEAR))
        for f in frames
    ]
