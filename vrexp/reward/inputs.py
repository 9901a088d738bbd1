"""What :class:`~vrexp.reward.scorer.VisionReward` accepts as media, turned into what a backbone reads.

An item is one of:

- a path (``str`` or ``os.PathLike``) to an image or a video file (``vrexp.media`` reads it; a
  video is decoded only at the frames the backbone's ``frames`` sampling selects);
- a ``PIL.Image.Image``: a still image, or an animated GIF / WebP / PNG as a video (frame times
  from the frames' durations);
- a numpy array: ``[H, W]`` grayscale, ``[H, W, C]`` an image, ``[T, H, W, C]`` a video, with
  ``C`` 1 (gray), 3 (RGB) or 4 (RGBA, composited over ``background``); ``uint8`` in [0, 255] or a
  float array in [0, 1];
- a torch tensor in torch's channel-first layout: ``[C, H, W]`` an image, ``[T, C, H, W]`` a
  video, same channels and ranges as arrays (a tensor's channels come first even when its last
  axis also has 1, 3 or 4 entries);
- a :class:`vrexp.media.Clip` (frames with their timestamps).

The result is a uint8 RGB array ``[H, W, 3]`` for an image, or a :class:`~vrexp.media.Clip` for a
video. Every error names the item's position, so a bad element of a long list is easy to find.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from vrexp.configs import FrameSampling
from vrexp.configs.choices import Media
from vrexp.media import Clip, image_to_rgb, load_for_model, sample_animation

MediaInput = str | os.PathLike | Image.Image | np.ndarray | torch.Tensor | Clip
WHITE = (255, 255, 255)
CHANNELS = (1, 3, 4)
# Animated images without a frame duration play at this rate in browsers (100 ms a frame).
DEFAULT_FRAME_SECONDS = 0.1


class MediaInputError(ValueError):
    """An item the scorer cannot read as an image or a video, naming its position."""


def is_single(media: Any, prompts: str | Sequence[str]) -> bool:
    """Whether ``media`` is one item rather than a list of items.

    An array or a tensor with one prompt string is one item (an image, or a video when it has a
    time axis); with a list of prompts it is a batch along its first axis."""
    if isinstance(media, (str, os.PathLike, Image.Image, Clip)):
        return True
    if isinstance(media, (np.ndarray, torch.Tensor)):
        return isinstance(prompts, str) or media.ndim <= 2
    return False


def media_kind(media: np.ndarray | Clip) -> Media:
    return Media.video if isinstance(media, Clip) or np.ndim(media) == 4 else Media.image


def to_model_media(
    value: Any, sampling: FrameSampling, *, index: int = 0, background: tuple = WHITE
) -> np.ndarray | Clip:
    """One item as uint8 RGB ``[H, W, 3]`` (an image) or a :class:`Clip` (a video)."""
    where = f"media[{index}]"
    if isinstance(value, (str, os.PathLike)):
        return load_for_model(Path(value), sampling)
    if isinstance(value, Clip):
        if 0 in value.frames.shape:
            raise MediaInputError(f"{where}: empty clip of shape {tuple(value.frames.shape)}")
        return value
    if isinstance(value, Image.Image):
        return _from_pil(value, sampling, background, where)
    if isinstance(value, torch.Tensor):
        array = value.detach().cpu()
        if array.ndim in (3, 4):  # channel-first -> channel-last
            array = array.movedim(-3, -1)
        return _from_array(array.numpy(), where, background)
    if isinstance(value, np.ndarray):
        return _from_array(value, where, background)
    raise MediaInputError(
        f"{where}: expected a path, a PIL image, a numpy array, a torch tensor or a Clip, "
        f"got {type(value).__name__}"
    )


def _from_pil(
    image: Image.Image, sampling: FrameSampling, background: tuple, where: str
) -> np.ndarray | Clip:
    if getattr(image, "n_frames", 1) <= 1:
        return image_to_rgb(image, background=background)
    # Only the frames the backbone's sampling picks become arrays (not a 1,500-frame GIF).
    return sample_animation(
        image, sampling, frame_seconds=DEFAULT_FRAME_SECONDS, background=background, where=where
    )


def _from_array(array: np.ndarray, where: str, background: tuple) -> np.ndarray | Clip:
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim not in (3, 4) or array.shape[-1] not in CHANNELS:
        raise MediaInputError(
            f"{where}: expected [H, W], [H, W, C] or [T, H, W, C] with C in {CHANNELS} (tensors "
            f"[C, H, W] or [T, C, H, W]), got shape {tuple(array.shape)}"
        )
    if 0 in array.shape:
        raise MediaInputError(f"{where}: empty media of shape {tuple(array.shape)}")
    array = _as_uint8(array, where)
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    elif array.shape[-1] == 4:
        alpha = array[..., 3:].astype(np.float32) / 255
        rgb = array[..., :3] * alpha + np.asarray(background, np.float32) * (1 - alpha)
        array = np.rint(rgb).astype(np.uint8)
    # A video array stays an array: the backbone times its frames at frames.source_fps.
    return np.ascontiguousarray(array)


def _as_uint8(array: np.ndarray, where: str) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.floating):
        raise MediaInputError(
            f"{where}: pixels must be uint8 in [0, 255] or floats in [0, 1], got {array.dtype}"
        )
    if not np.isfinite(array).all():
        raise MediaInputError(f"{where}: pixels contain NaN or infinity")
    low, high = float(array.min()), float(array.max())
    if low < 0 or high > 1:
        raise MediaInputError(
            f"{where}: float pixels must lie in [0, 1], got [{low:.3g}, {high:.3g}] (pass uint8 "
            "for [0, 255])"
        )
    return np.rint(array * 255).astype(np.uint8)
