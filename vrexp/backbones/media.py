"""Media -> the frames a backbone sees: a video's frames picked by the backbone's sampling
(:func:`vrexp.media.select_frames`), every frame resized to a square size
(:func:`vrexp.media.to_model_size`, also what readers given that size reduce frames to)."""

from __future__ import annotations

import numpy as np

from vrexp.configs import FrameSampling
from vrexp.media import Clip, to_model_size


def sampled(media: np.ndarray | Clip, sampling: FrameSampling) -> np.ndarray | Clip:
    """An image [H, W, 3] unchanged; a video as the :class:`Clip` of the frames ``sampling``
    picks. A video array [T, H, W, 3] carries no timing: its frames are ``sampling.source_fps``
    apart. A clip already sampled with ``sampling`` is returned as it is."""
    if isinstance(media, Clip):
        return media.sample(sampling)
    if media.dtype != np.uint8 or media.ndim not in (3, 4) or media.shape[-1] != 3:
        raise ValueError(
            f"media must be uint8 [H, W, 3] or [T, H, W, 3], got {media.dtype} {media.shape}"
        )
    return (
        media if media.ndim == 3 else Clip.from_array(media, sampling.source_fps).sample(sampling)
    )


def is_video(media: np.ndarray | Clip) -> bool:
    return isinstance(media, Clip) or np.ndim(media) == 4


def media_shape(media: np.ndarray | Clip) -> tuple[int, ...]:
    """The pixel array's shape: [H, W, 3], or [T, H, W, 3] for a clip."""
    return media.frames.shape if isinstance(media, Clip) else np.shape(media)


def to_frames(media: np.ndarray | Clip, size: int, sampling: FrameSampling) -> list[np.ndarray]:
    """An image -> [frame]; a video -> its sampled frames; all size x size."""
    media = sampled(media, sampling)
    frames = [media] if isinstance(media, np.ndarray) else list(media.frames)
    return [to_model_size(f, size) for f in frames]
