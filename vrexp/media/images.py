"""Pillow's side of the media package: any Pillow image as uint8 RGB (:func:`image_to_rgb`), and
the still images and animations (GIF, WebP, APNG) Pillow reads from files, with the frame times
their durations give.

FFmpeg reads none of these better: its WebP decoder cannot do animated WebP, and Pillow composes
the frames of an animation (disposal, blending) itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, ImageSequence, UnidentifiedImageError

from vrexp.configs import FrameSampling
from vrexp.configs.choices import Media
from vrexp.media.base import BACKGROUND, Clip, MediaError, MediaInfo, check_pixels
from vrexp.media.selection import select_frames

# Integer modes Pillow gives 16-bit greyscale in (PNG, TIFF): their 0..65535 range is scaled to
# 8 bits, where Image.convert would clip it at 255.
SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})
# EXIF orientations that swap width and height (transpose, rotate 90 / 270, transverse).
SWAPPED_ORIENTATIONS = frozenset({5, 6, 7, 8})
# Formats Pillow identifies but cannot decode as video; FFmpeg reads them.
LEFT_TO_FFMPEG = frozenset({"MPEG"})
# What a damaged file makes Pillow raise while decoding (EOFError: GIF frames cut short).
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError)


def image_to_rgb(
    image: Image.Image, *, background: tuple[int, int, int] = BACKGROUND
) -> np.ndarray:
    """uint8 [H, W, 3] of any Pillow image, as a viewer shows it.

    The EXIF orientation is applied; 16-bit greyscale is scaled to 8 bits; transparency (an alpha
    channel, or a palette or tRNS transparent colour) is composited over ``background``; palette,
    greyscale, CMYK and YCbCr images are converted; ``F`` (float) pixels are read on Pillow's
    0-255 scale, as ``Image.convert`` does, rounded and clipped.
    """
    if image.getexif().get(ExifTags.Base.Orientation, 1) != 1:
        image = ImageOps.exif_transpose(image)
    if image.mode in SIXTEEN_BIT_MODES:
        values = np.clip(np.asarray(image).astype(np.int64), 0, 65535)
        return _grey_to_rgb(((values * 255 + 32767) // 65535).astype(np.uint8))
    if image.mode == "F":
        return _grey_to_rgb(np.clip(np.rint(np.asarray(image)), 0, 255).astype(np.uint8))
    if image.has_transparency_data:
        canvas = Image.new("RGBA", image.size, (*background, 255))
        image = Image.alpha_composite(canvas, image.convert("RGBA"))
    return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))


def _grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=2)


def open_image(path: Path) -> Image.Image | None:
    """The file opened by Pillow (headers read, no pixels decoded), or None if Pillow does not
    recognise it (a video, for FFmpeg)."""
    try:
        image = Image.open(path)
    except UnidentifiedImageError:
        return None
    except Image.DecompressionBombError as err:
        raise MediaError(
            f"{path}: over Pillow's pixel limit, refused before decoding: {err}"
        ) from err
    except DECODE_ERRORS as err:
        raise MediaError(f"{path}: truncated or corrupt image header ({err})") from err
    if image.format in LEFT_TO_FFMPEG:
        image.close()
        return None
    return image


def frame_count(image: Image.Image) -> int:
    return getattr(image, "n_frames", 1)


def probe_image(path: Path, image: Image.Image) -> MediaInfo:
    """What Pillow's headers say: size (after the EXIF orientation), frames and their timing."""
    width, height = image.size
    if image.getexif().get(ExifTags.Base.Orientation, 1) in SWAPPED_ORIENTATIONS:
        width, height = height, width
    count = frame_count(image)
    kind = Media.image if count == 1 else Media.video
    durations = frame_durations(path, image) if count > 1 else None
    total = float(durations.sum()) / 1000.0 if durations is not None else None
    name = _format_name(image)
    return MediaInfo(
        path=path,
        kind=kind,
        width=width,
        height=height,
        num_frames=count,
        fps=count / total if total else None,
        duration=total,
        codec="apng" if name == "png" and count > 1 else name,
        container=name,
    )


def _format_name(image: Image.Image) -> str:
    return (image.format or "unknown").lower()


def frame_durations(path: Path, image: Image.Image) -> np.ndarray | None:
    """Milliseconds each frame of an animation is shown; None unless every frame has a duration
    (a zero GIF delay means "no timing": browsers stretch it to 0.1 s, other players don't).
    GIF and APNG state durations in frame headers; WebP's are known once a frame is decoded."""
    durations = []
    try:
        for index in range(frame_count(image)):
            image.seek(index)
            if "duration" not in image.info:
                image.load()
            durations.append(image.info.get("duration"))
        image.seek(0)
    except DECODE_ERRORS as err:
        raise MediaError(f"{path}: truncated or corrupt animation ({err})") from err
    if any(not d or d <= 0 for d in durations):
        return None
    return np.asarray(durations, dtype=np.float64)


def load_image(
    path: Path, image: Image.Image, background: tuple[int, int, int], max_pixels: int | None
) -> np.ndarray:
    """uint8 [H, W, 3] of a still, or [T, H, W, 3] with every frame of an animation."""
    check_pixels(path, *image.size, max_pixels)
    frames = list(_decoded(path, ImageSequence.Iterator(image), background))
    return frames[0] if len(frames) == 1 else np.stack(frames)


def read_animation(
    path: Path,
    image: Image.Image,
    sampling: FrameSampling,
    background: tuple[int, int, int],
    max_pixels: int | None,
) -> Clip:
    """The frames of an animation that ``sampling`` picks, timed by their durations (by
    ``sampling.source_fps`` when they have none); only those frames are converted to arrays."""
    check_pixels(path, *image.size, max_pixels)
    durations = frame_durations(path, image)
    if durations is None:
        times = np.arange(frame_count(image), dtype=np.float64) / sampling.source_fps
    else:
        times = np.concatenate([[0.0], np.cumsum(durations[:-1])]) / 1000.0
    index = select_frames(times, sampling)
    frames = list(_decoded(path, _seek_each(image, index), background))
    return Clip(np.stack(frames), times[index], sampling)


def _seek_each(image: Image.Image, index: np.ndarray) -> Iterator[Image.Image]:
    for i in index:
        image.seek(int(i))
        yield image


def _decoded(
    path: Path, frames: Iterator[Image.Image], background: tuple[int, int, int]
) -> Iterator[np.ndarray]:
    while True:
        try:
            frame = next(frames, None)
            if frame is None:
                return
            frame.load()
        except DECODE_ERRORS as err:
            raise MediaError(f"{path}: truncated or corrupt image data ({err})") from err
        try:
            pixels = image_to_rgb(frame, background=background)
        except ValueError as err:  # a mode Pillow cannot turn into RGB (e.g. LAB)
            raise MediaError(f"{path}: {frame.mode} pixels cannot be read as RGB ({err})") from err
        yield pixels
