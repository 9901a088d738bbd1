"""Pillow's side of the media package: any Pillow image as uint8 RGB (:func:`image_to_rgb`), and
the still images and animations (GIF, WebP, APNG) Pillow reads from files, with the frame times
their durations give.

FFmpeg reads none of these better: its WebP decoder cannot do animated WebP, and Pillow composes
the frames of an animation (disposal, blending) itself.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, ImageSequence, UnidentifiedImageError

from vrexp.configs import FrameSampling
from vrexp.configs.choices import Media
from vrexp.media.base import BACKGROUND, MAX_PIXELS, Clip, MediaError, MediaInfo, check_pixels
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
# The filter frames are resized to a model's square size with: the one every backbone uses.
MODEL_RESAMPLING = Image.Resampling.BILINEAR
# A JPEG read for a model is decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling) only while
# that leaves at least this many times the model's size, as Pillow's thumbnail() does: the final
# bilinear resize then sees nearly the pixels a full decode would give it.
DRAFT_GAP = 2


def image_to_rgb(
    image: Image.Image, *, background: tuple[int, int, int] = BACKGROUND
) -> np.ndarray:
    """uint8 [H, W, 3] of any Pillow image, as a viewer shows it.

    The EXIF orientation is applied; 16-bit greyscale is scaled to 8 bits; transparency (an alpha
    channel, or a palette or tRNS transparent colour) is composited over ``background``; palette,
    greyscale, CMYK and YCbCr images are converted; ``F`` (float) pixels are read on Pillow's
    0-255 scale, as ``Image.convert`` does, rounded and clipped.
    """
    return np.asarray(rgb_image(image, background=background))


def rgb_image(image: Image.Image, *, background: tuple[int, int, int] = BACKGROUND) -> Image.Image:
    """:func:`image_to_rgb` as a Pillow ``RGB`` image (resized before it becomes an array)."""
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
    return image if image.mode == "RGB" else image.convert("RGB")


def _grey_to_rgb(grey: np.ndarray) -> Image.Image:
    return Image.fromarray(np.repeat(grey[..., None], 3, axis=2))


def to_model_size(pixels: np.ndarray | Image.Image, size: int | None) -> np.ndarray:
    """uint8 [size, size, 3] of an RGB frame, resized as every backbone resizes (bilinear, with
    Pillow's antialiasing when shrinking); the frame itself when it has that size or ``size`` is
    None."""
    image = pixels if isinstance(pixels, Image.Image) else None
    shape = (image.height, image.width) if image is not None else np.shape(pixels)[:2]
    if size is None or tuple(shape) == (size, size):
        return np.asarray(pixels)
    image = image if image is not None else Image.fromarray(np.asarray(pixels))
    return np.asarray(image.resize((size, size), MODEL_RESAMPLING))


def open_image(path: Path) -> Image.Image | None:
    """The file opened by Pillow (headers read, no pixels decoded), or None if Pillow does not
    recognise it (a video, for FFmpeg)."""
    try:
        with warnings.catch_warnings():
            # Pillow warns between its two limits; the readers' own max_pixels check decides.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except UnidentifiedImageError:
        return None
    except Image.DecompressionBombError as err:
        raise MediaError(_bomb_message(path, err)) from err
    except DECODE_ERRORS as err:
        raise MediaError(f"{path}: truncated or corrupt image header ({err})") from err
    if image.format in LEFT_TO_FFMPEG:
        image.close()
        return None
    return image


def _bomb_message(path: Path | str, err: Exception) -> str:
    return (
        f"{path}: a decompression bomb? Refused before decoding: its header states more pixels "
        f"than Pillow's limit ({err}); raise PIL.Image.MAX_IMAGE_PIXELS to read it"
    )


@contextmanager
def pillow_errors(path: Path | str, what: str) -> Iterator[None]:
    """Pillow's errors while seeking or decoding as :class:`MediaError` naming ``path``: a frame
    whose header states a huge canvas (Pillow checks later GIF frames and TIFF pages as it
    reaches them), or damaged data (``what`` says which)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    except MediaError:
        raise
    except Image.DecompressionBombError as err:
        raise MediaError(_bomb_message(path, err)) from err
    except DECODE_ERRORS as err:
        raise MediaError(f"{path}: truncated or corrupt {what} ({err})") from err


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


def frame_durations(
    path: Path, image: Image.Image, max_pixels: int | None = None
) -> np.ndarray | None:
    """Milliseconds each frame of an animation is shown; None unless every frame has a duration
    (a zero GIF delay means "no timing": browsers stretch it to 0.1 s, other players don't).
    GIF and APNG state durations in frame headers; WebP's are known once a frame is decoded.
    Seeking a GIF decodes the frame before, so each frame's size is checked on reaching it."""
    durations = []
    with pillow_errors(path, "animation"):
        for index in range(frame_count(image)):
            image.seek(index)
            check_pixels(path, *image.size, max_pixels)
            if "duration" not in image.info:
                image.load()
            durations.append(image.info.get("duration"))
        image.seek(0)
    if any(not d or d <= 0 for d in durations):
        return None
    return np.asarray(durations, dtype=np.float64)


def load_image(
    path: Path,
    image: Image.Image,
    background: tuple[int, int, int],
    max_pixels: int | None,
    size: int | None = None,
) -> np.ndarray:
    """uint8 [H, W, 3] of a still, or [T, H, W, 3] with every frame of an animation; with
    ``size``, each frame reduced to size x size as it is read (:func:`to_model_size`; a JPEG
    still decoded at a reduced scale first, :func:`draft_for`)."""
    check_pixels(path, *image.size, max_pixels)
    if size is not None and frame_count(image) == 1:
        draft_for(image, size)
    frames = list(_decoded(path, ImageSequence.Iterator(image), background, max_pixels, size))
    return frames[0] if len(frames) == 1 else np.stack(frames)


def draft_for(image: Image.Image, size: int) -> None:
    """Have Pillow decode a JPEG at the smallest DCT scale (1/8, 1/4, 1/2) that divides its width
    and height exactly and leaves both at least ``DRAFT_GAP * size``; other formats are decoded
    whole. Call before the pixels are loaded."""
    if image.format != "JPEG":
        return
    width, height = image.size
    for scale in (8, 4, 2):
        exact = width % scale == 0 and height % scale == 0
        if exact and min(width, height) // scale >= DRAFT_GAP * size:
            image.draft(None, (width // scale, height // scale))
            return


def animation_times(
    path: Path, image: Image.Image, source_fps: float, max_pixels: int | None
) -> np.ndarray:
    """Seconds from the first frame of each frame of an animation, from their durations (frames
    ``1 / source_fps`` apart when they have none)."""
    durations = frame_durations(path, image, max_pixels)
    if durations is None:
        return np.arange(frame_count(image), dtype=np.float64) / source_fps
    return np.concatenate([[0.0], np.cumsum(durations[:-1])]) / 1000.0


def read_animation(
    path: Path,
    image: Image.Image,
    sampling: FrameSampling,
    background: tuple[int, int, int],
    max_pixels: int | None,
    size: int | None = None,
) -> Clip:
    """The frames of an animation that ``sampling`` picks, timed by their durations (by
    ``sampling.source_fps`` when they have none); only those frames are converted to arrays
    (reduced to ``size`` x ``size`` first, when given). GIF, APNG and WebP have no random access:
    Pillow composes the frames before a picked one in passing, one canvas at a time."""
    check_pixels(path, *image.size, max_pixels)
    times = animation_times(path, image, sampling.source_fps, max_pixels)
    index = select_frames(times, sampling)
    frames = list(_decoded(path, seek_each(image, index), background, max_pixels, size))
    return Clip(np.stack(frames), times[index], sampling)


def seek_each(image: Image.Image, index: np.ndarray) -> Iterator[Image.Image]:
    """``image`` at each frame of ``index`` (sorted), in turn."""
    for i in index:
        image.seek(int(i))
        yield image


def _decoded(
    path: Path | str,
    frames: Iterator[Image.Image],
    background: tuple[int, int, int],
    max_pixels: int | None,
    size: int | None,
) -> Iterator[np.ndarray]:
    """Each frame as uint8 RGB (size x size with ``size``). Every frame's own size is checked:
    a later GIF frame can grow the canvas, and TIFF pages each have their own."""
    while True:
        with pillow_errors(path, "image data"):
            frame = next(frames, None)
            if frame is None:
                return
            check_pixels(path, *frame.size, max_pixels)
            frame.load()
        try:
            pixels = rgb_image(frame, background=background)
        except ValueError as err:  # a mode Pillow cannot turn into RGB (e.g. LAB)
            raise MediaError(f"{path}: {frame.mode} pixels cannot be read as RGB ({err})") from err
        yield to_model_size(pixels, size)


def sample_animation(
    image: Image.Image,
    sampling: FrameSampling,
    *,
    frame_seconds: float,
    background: tuple[int, int, int] = BACKGROUND,
    size: int | None = None,
    max_pixels: int | None = MAX_PIXELS,
    where: str = "image",
) -> Clip:
    """The frames ``sampling`` picks of an animation already open in Pillow (a PIL image handed
    to the scorer), timed by their durations, a frame without one shown ``frame_seconds``; only
    the picked frames are converted to arrays. ``where`` names the image in errors. The image is
    left at its first frame."""
    clock, times = 0.0, []
    with pillow_errors(where, "animation"):
        for index in range(frame_count(image)):
            image.seek(index)
            check_pixels(where, *image.size, max_pixels)
            if "duration" not in image.info:
                image.load()  # WebP states a frame's duration once it is decoded
            times.append(clock)
            clock += (image.info.get("duration") or frame_seconds * 1000) / 1000
    picks = select_frames(np.asarray(times, dtype=np.float64), sampling)
    frames = np.stack(list(_decoded(where, seek_each(image, picks), background, max_pixels, size)))
    image.seek(0)
    return Clip(frames, np.asarray(times)[picks], sampling)
