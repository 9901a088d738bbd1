"""The media package's value types and its one error: :class:`MediaError`, :class:`MediaInfo`,
:class:`Clip`, and the checks every reader runs before decoding (the file is there and not empty;
a frame is not over the pixel limit)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vrexp.configs import FrameSampling
from vrexp.configs.choices import Media
from vrexp.media.selection import select_frames

# Pixels per frame above which a file is refused before decoding (a decompression bomb: a small
# file whose header promises a huge canvas). Readers take ``max_pixels=`` to change it.
MAX_PIXELS = 8192 * 8192
# What transparent pixels are composited over when media are read as RGB.
BACKGROUND = (255, 255, 255)


# The suffixes of the formats vrexp reads (docs/media.md), for finding media in a folder; reading
# itself goes by the file's contents, not its name.
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".apng", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
)
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".webm", ".mov", ".mkv", ".avi"})
MEDIA_SUFFIXES = IMAGE_SUFFIXES | VIDEO_SUFFIXES


class MediaError(OSError):
    """A media file that cannot be read or written; the message names the file and the problem."""


@dataclass(frozen=True)
class MediaInfo:
    """What a file holds, read from its headers (:func:`vrexp.media.probe_media`)."""

    path: Path
    kind: Media
    width: int
    height: int
    num_frames: int  # 1 for a still image
    fps: float | None  # None: a still, or an animation whose frames carry no durations
    duration: float | None  # seconds
    codec: str  # FFmpeg's codec name, or the Pillow format ("png", "apng", "gif", "jpeg", ...)
    container: str  # FFmpeg's demuxer name, or the Pillow format


class Clip:
    """Video frames with their presentation times.

    ``sampled_with`` is the :class:`~vrexp.configs.FrameSampling` already applied to the frames
    (None: every frame of the source), so a consumer with the same sampling does not select again.

    Immutable, but not a dataclass: Lightning moves batches to the device with
    ``apply_to_collection``, which recurses into dataclasses and refuses frozen ones; a clip in a
    batch has to pass through as one opaque item.
    """

    __slots__ = ("frames", "sampled_with", "timestamps")
    frames: np.ndarray  # uint8 [T, H, W, 3]
    timestamps: np.ndarray  # float64 [T], seconds from the first frame, increasing
    sampled_with: FrameSampling | None

    def __init__(
        self,
        frames: np.ndarray,
        timestamps: np.ndarray,
        sampled_with: FrameSampling | None = None,
    ) -> None:
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(
                f"clip frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}"
            )
        if timestamps.shape != (len(frames),):
            raise ValueError(f"{len(frames)} frames but timestamps of shape {timestamps.shape}")
        if np.any(np.diff(timestamps) < 0):
            raise ValueError("clip timestamps must not decrease")
        for name, value in (
            ("frames", frames),
            ("timestamps", timestamps),
            ("sampled_with", sampled_with),
        ):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Clip is immutable: cannot set {name}")

    def __repr__(self) -> str:
        return (
            f"Clip(frames={self.frames.shape}, seconds={self.timestamps[:1].tolist()}..."
            f"{self.timestamps[-1:].tolist()}, sampled_with={self.sampled_with!r})"
        )

    @classmethod
    def from_array(cls, frames: np.ndarray, fps: float) -> Clip:
        """A clip of every frame of ``frames`` [T, H, W, 3], shown ``fps`` frames per second."""
        return cls(frames, np.arange(len(frames), dtype=np.float64) / fps)

    def __len__(self) -> int:
        return len(self.frames)

    def sample(self, sampling: FrameSampling) -> Clip:
        """The frames ``sampling`` selects; the clip itself if it was sampled so already."""
        if self.sampled_with == sampling:
            return self
        index = select_frames(self.timestamps, sampling)
        return Clip(self.frames[index], self.timestamps[index], sampling)


def require_file(path: Path) -> None:
    """Raise unless ``path`` is a non-empty file."""
    if not path.exists():
        raise MediaError(f"media file not found: {path}")
    if not path.is_file():
        raise MediaError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: empty file (0 bytes)")


def check_pixels(path: Path, width: int, height: int, max_pixels: int | None) -> None:
    """Refuse a frame over ``max_pixels`` (None: no limit) before any of it is decoded."""
    if max_pixels is not None and width * height > max_pixels:
        raise MediaError(
            f"{path}: {width}x{height} = {width * height:,} pixels per frame is over the limit of "
            f"{max_pixels:,} (a decompression bomb?); pass max_pixels= to allow more"
        )
