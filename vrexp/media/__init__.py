"""Media files: reading images and videos as uint8 RGB, picking and decoding only the video frames
a model sees, and writing PNG / APNG / H.264 MP4 (docs/media.md).

A primitive-level layer: it imports only :mod:`vrexp.configs` (and the primitive
:mod:`vrexp.atomic`); data, backbones, reward, generators, reports, modules and tasks use it.
"""

from vrexp.media.base import (
    BACKGROUND,
    MAX_PIXELS,
    MEDIA_SUFFIXES,
    Clip,
    MediaError,
    MediaInfo,
)
from vrexp.media.images import image_to_rgb, sample_animation, to_model_size
from vrexp.media.reading import load_for_model, load_media, probe_media, read_frames
from vrexp.media.selection import OFFICIAL_MAX_FRAMES, select_frames
from vrexp.media.writing import save_media

__all__ = [
    "BACKGROUND",
    "MAX_PIXELS",
    "MEDIA_SUFFIXES",
    "OFFICIAL_MAX_FRAMES",
    "Clip",
    "MediaError",
    "MediaInfo",
    "image_to_rgb",
    "load_for_model",
    "load_media",
    "probe_media",
    "read_frames",
    "sample_animation",
    "save_media",
    "select_frames",
    "to_model_size",
]
