"""Reading media files, each entry point choosing Pillow or FFmpeg by what the file holds.

Pillow reads every still image and the animated GIF, WebP and PNG (APNG); FFmpeg (PyAV) reads the
rest. :func:`load_media` returns all the pixels; :func:`read_frames` and :func:`load_for_model`
decode only the frames a :class:`~vrexp.configs.FrameSampling` picks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vrexp.configs import FrameSampling
from vrexp.media.base import BACKGROUND, MAX_PIXELS, Clip, MediaError, MediaInfo, require_file
from vrexp.media.images import frame_count, load_image, open_image, probe_image, read_animation
from vrexp.media.video import load_video, probe_video, read_video


def probe_media(path: str | Path) -> MediaInfo:
    """What ``path`` holds, from its headers and (for a video) its packets; decodes no frame."""
    path = Path(path)
    require_file(path)
    image = open_image(path)
    if image is None:
        return probe_video(path)
    with image:
        return probe_image(path, image)


def load_media(
    path: str | Path,
    *,
    background: tuple[int, int, int] = BACKGROUND,
    max_pixels: int | None = MAX_PIXELS,
) -> np.ndarray:
    """Every pixel of ``path``: uint8 [H, W, 3] for an image, [T, H, W, 3] for a video or an
    animation. Transparency is composited over ``background``; a frame over ``max_pixels``
    (None: no limit) is refused before decoding."""
    path = Path(path)
    require_file(path)
    image = open_image(path)
    if image is None:
        return load_video(path, max_pixels)
    with image:
        return load_image(path, image, background, max_pixels)


def read_frames(
    path: str | Path,
    sampling: FrameSampling,
    *,
    background: tuple[int, int, int] = BACKGROUND,
    max_pixels: int | None = MAX_PIXELS,
) -> Clip:
    """The frames of the video ``path`` that ``sampling`` picks, with their times; no other
    frame is turned into an array (nor, for a video, decoded past what reaching them needs)."""
    path = Path(path)
    require_file(path)
    image = open_image(path)
    if image is None:
        return read_video(path, sampling, max_pixels)
    with image:
        if frame_count(image) == 1:
            raise MediaError(f"{path}: a still image, not a video (read it with load_media)")
        return read_animation(path, image, sampling, background, max_pixels)


def load_for_model(
    path: str | Path,
    sampling: FrameSampling,
    *,
    size: int | None = None,
    background: tuple[int, int, int] = BACKGROUND,
    max_pixels: int | None = MAX_PIXELS,
) -> np.ndarray | Clip:
    """What a checklist model sees of ``path``: an image as uint8 [H, W, 3], a video as the
    :class:`Clip` of the frames ``sampling`` (the backbone's ``frames``) picks.

    ``size`` (the backbone's ``image_size``): every frame is reduced to size x size as it is
    read, with the resize the backbone would apply (:func:`~vrexp.media.to_model_size`), so a
    batch of large files costs what the model sees; a JPEG is decoded at a reduced DCT scale
    first (docs/media.md §4). None: full resolution."""
    path = Path(path)
    require_file(path)
    image = open_image(path)
    if image is None:
        return read_video(path, sampling, max_pixels, size)
    with image:
        if frame_count(image) == 1:
            return load_image(path, image, background, max_pixels, size)
        return read_animation(path, image, sampling, background, max_pixels, size)
