"""Real media files for the media tests, written with PyAV and Pillow.

Video frames carry their own index: the top half is eight vertical bars, black or white by the
bits of the index, which survive lossy codecs, so a test can read back *which* frames it got. The
bottom half is one solid colour, to check colours within a codec's tolerance.
"""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

BARS = 8  # index bits per frame: up to 256 frames
COLOUR = (200, 60, 120)  # the bottom half of every coded frame
WIDTH, HEIGHT = 64, 48
FPS = 25
NUM_FRAMES = 75  # 3 s at 25 fps
KEYFRAME_INTERVAL = 10  # frames per GOP: seeking is exercised
# Irregular frame times (seconds), for the official rule on a variable-rate clip.
VARIABLE_TIMES = (0.0, 0.3, 0.45, 0.9, 1.2, 1.55, 2.1, 2.4, 2.95, 3.3, 3.62)
ANIMATION_MS = (100, 200, 100, 300, 100, 100, 200, 100)  # APNG frame durations

# name -> (codec, container format, file suffix)
VIDEOS = {
    "mp4_h264": ("libx264", "mp4", ".mp4"),
    "mp4_h265": ("libx265", "mp4", ".mp4"),
    "webm_vp9": ("libvpx-vp9", "webm", ".webm"),
    "webm_av1": ("libsvtav1", "webm", ".webm"),
    "mov_h264": ("libx264", "mov", ".mov"),
    "mkv_h264": ("libx264", "matroska", ".mkv"),
    "avi_mpeg4": ("mpeg4", "avi", ".avi"),
}
CODEC_NAMES = {
    "mp4_h264": "h264",
    "mp4_h265": "hevc",
    "webm_vp9": "vp9",
    "webm_av1": "av1",
    "mov_h264": "h264",
    "mkv_h264": "h264",
    "avi_mpeg4": "mpeg4",
}


def coded_frame(index: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    frame = np.empty((height, width, 3), dtype=np.uint8)
    bar = width // BARS
    for bit in range(BARS):
        frame[: height // 2, bit * bar : (bit + 1) * bar] = 255 if index >> bit & 1 else 0
    frame[height // 2 :] = COLOUR
    return frame


def coded_frames(
    count: int, width: int = WIDTH, height: int = HEIGHT, first: int = 0
) -> np.ndarray:
    """Frames ``first`` to ``first + count - 1``: clips with different ``first`` differ."""
    return np.stack([coded_frame(first + i, width, height) for i in range(count)])


def frame_index(frame: np.ndarray) -> int:
    """The index a :func:`coded_frame` carries, read from the middle of each bar."""
    height, width = frame.shape[:2]
    bar = width // BARS
    row = frame[height // 4 - 2 : height // 4 + 2]
    bits = [row[:, b * bar + bar // 4 : (b + 1) * bar - bar // 4].mean() > 128 for b in range(BARS)]
    return sum(1 << b for b, on in enumerate(bits) if on)


def frame_indices(frames: np.ndarray) -> list[int]:
    return [frame_index(f) for f in frames]


def bottom_colour(frame: np.ndarray) -> np.ndarray:
    """Mean colour of the inside of the bottom half (away from the chroma-blurred edge)."""
    height = frame.shape[0]
    return frame[height // 2 + 4 : height - 2, 2:-2].reshape(-1, 3).mean(0)


def write_video(
    path: Path,
    codec: str,
    container_format: str,
    frames: np.ndarray,
    *,
    fps: int = FPS,
    times: tuple[float, ...] | None = None,
) -> Path:
    """Encode ``frames`` with ``codec``; ``times`` (seconds) gives each frame its own timestamp."""
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = KEYFRAME_INTERVAL
        if codec == "libx265":
            stream.options = {"x265-params": "log-level=none"}
        if times is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        for i, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            if times is not None:
                frame.pts, frame.time_base = round(times[i] * 1000), Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def write_audio_only(path: Path) -> Path:
    """An MP4 with half a second of AAC silence and no video stream."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=16000)
        stream.layout = "mono"
        samples = np.zeros((1, 8000), dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 16000
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def write_frameless_video(path: Path) -> Path:
    """A Matroska file with an H.264 video track and not one frame."""
    with av.open(str(path), "w", format="matroska") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        container.start_encoding()  # the header, written on the first packet otherwise
    return path


def write_undecodable_codec(path: Path, tmp: Path) -> Path:
    """An AVI whose video stream is tagged AVS2, a codec this FFmpeg build has no decoder for:
    an MPEG-4 AVI with its codec FourCC (in the stream header and the format chunk) replaced."""
    source = write_video(tmp, "mpeg4", "avi", coded_frames(5))
    data = source.read_bytes()
    assert data.count(b"FMP4") == 2
    path.write_bytes(data.replace(b"FMP4", b"AVS2"))
    return path


def write_animation(path: Path, frames: np.ndarray, durations_ms, **save) -> Path:
    images = [Image.fromarray(f) for f in frames]
    images[0].save(
        path, save_all=True, append_images=images[1:], duration=list(durations_ms), loop=0, **save
    )
    return path


def jpeg_with_orientation(path: Path, orientation: int) -> Path:
    """40 x 20 px: the left half red, the right half blue, stored with an EXIF orientation."""
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, :20] = (255, 0, 0)
    pixels[:, 20:] = (0, 0, 255)
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.save(path, format="JPEG", quality=95, exif=exif)
    return path


def png_claiming_size(path: Path, width: int, height: int) -> Path:
    """A valid 1-bit PNG of ``width`` x ``height`` zeros: a few kilobytes on disk, far more
    pixels when decoded."""
    buffer = io.BytesIO()
    Image.new("1", (width, height)).save(buffer, format="PNG", optimize=False)
    path.write_bytes(buffer.getvalue())
    return path
