"""Writing media files atomically; the suffix chooses the format (docs/media.md §1).

``.png``: a PNG image, or a lossless animated PNG (APNG) video, whose pixels read back exactly
(what SynthWorld's pixel oracle and training need). ``.mp4``: H.264 in yuv420p, small and playable
everywhere, but lossy.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from vrexp.atomic import atomic_write
from vrexp.configs.backbone import UNTIMED_FPS
from vrexp.configs.choices import VideoFormat
from vrexp.media.base import MediaError

# H.264 settings: CRF 18 is visually lossless for x264; faststart puts the index first so a
# player can start before the whole file has arrived.
H264_OPTIONS = {"crf": "18", "preset": "medium"}
MP4_OPTIONS = {"movflags": "+faststart"}
# BT.601 limited range: the matrix PyAV converts RGB with, written into the stream so players
# convert back with the same one.
BT601 = 6  # AVCOL_SPC_SMPTE170M, AVCOL_PRI_SMPTE170M, AVCOL_TRC_SMPTE170M
LIMITED_RANGE = 1  # AVCOL_RANGE_MPEG


def save_media(path: str | Path, pixels: np.ndarray, *, fps: float = UNTIMED_FPS) -> None:
    """Write an image [H, W, 3] or a video [T, H, W, 3] (uint8), shown at ``fps``, atomically."""
    path = Path(path)
    if pixels.dtype != np.uint8 or pixels.ndim not in (3, 4) or pixels.shape[-1] != 3:
        raise MediaError(
            f"{path}: media must be uint8 [H, W, 3] or [T, H, W, 3], got {pixels.dtype} {pixels.shape}"
        )
    if not fps > 0:
        raise MediaError(f"{path}: fps={fps} must be positive")
    suffix = path.suffix.lower()
    if suffix == VideoFormat.apng.suffix:
        atomic_write(path, lambda tmp: _write_png(tmp, pixels, fps))
    elif suffix == VideoFormat.mp4.suffix:
        _check_h264(path, pixels)
        atomic_write(path, lambda tmp: _write_mp4(tmp, pixels, fps))
    else:
        raise MediaError(
            f"{path}: cannot write {suffix or 'a file without a suffix'}; the suffix chooses the "
            f"format: {VideoFormat.apng.suffix} (an image, or a lossless APNG video) or "
            f"{VideoFormat.mp4.suffix} (an H.264 video)"
        )


def _write_png(tmp: Path, pixels: np.ndarray, fps: float) -> None:
    if pixels.ndim == 3:
        Image.fromarray(pixels).save(tmp, format="PNG")
        return
    frames = [Image.fromarray(frame) for frame in pixels]
    # Pillow merges identical consecutive frames unless their blend ops differ; for opaque RGB
    # frames "source" and "over" give the same pixels, so alternating them keeps every frame.
    frames[0].save(
        tmp,
        format="PNG",
        save_all=True,
        append_images=frames[1:],
        duration=1000.0 / fps,  # milliseconds per frame; APNG stores whole milliseconds
        loop=0,
        blend=[i % 2 for i in range(len(frames))],
    )


def _check_h264(path: Path, pixels: np.ndarray) -> None:
    if pixels.ndim == 3:
        raise MediaError(f"{path}: .mp4 holds videos [T, H, W, 3]; write an image as .png")
    height, width = pixels.shape[1:3]
    if height % 2 or width % 2:
        raise MediaError(
            f"{path}: H.264 in yuv420p stores colour per 2x2 block, so it needs an even width and "
            f"height; got {width}x{height} (crop or pad a row / column, or write .png)"
        )


def _write_mp4(tmp: Path, frames: np.ndarray, fps: float) -> None:
    with av.open(str(tmp), "w", format="mp4", container_options=MP4_OPTIONS) as container:
        stream = container.add_stream(
            "libx264", rate=Fraction(fps).limit_denominator(1001), options=H264_OPTIONS
        )
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        context = stream.codec_context
        context.colorspace = context.color_primaries = context.color_trc = BT601
        context.color_range = LIMITED_RANGE
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
