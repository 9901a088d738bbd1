"""Reading and writing media files: images as PNG, videos as lossless animated PNG (APNG).

Lossless formats keep SynthWorld's pixel oracle exact on stored media. Every read error names the
file, so a corrupt or missing item in a large split is easy to find.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence, UnidentifiedImageError

from vrexp.atomic import atomic_write

FRAME_MS = 125


class MediaError(OSError):
    """A media file that is missing, unreadable or of the wrong shape."""


def save_media(path: str | Path, pixels: np.ndarray) -> None:
    """Write an image [H, W, 3] or a video [T, H, W, 3] (uint8) atomically."""
    path = Path(path)
    if pixels.dtype != np.uint8 or pixels.ndim not in (3, 4) or pixels.shape[-1] != 3:
        raise MediaError(
            f"{path}: media must be uint8 [H, W, 3] or [T, H, W, 3], got {pixels.dtype} {pixels.shape}"
        )
    if pixels.ndim == 3:
        atomic_write(path, lambda f: Image.fromarray(pixels).save(f, format="PNG"))
        return
    frames = [Image.fromarray(frame) for frame in pixels]
    # Pillow merges identical consecutive frames unless their blend ops differ; for opaque RGB
    # frames "source" and "over" give the same pixels, so alternating them keeps every frame.
    blend = [i % 2 for i in range(len(frames))]
    atomic_write(
        path,
        lambda f: frames[0].save(
            f,
            format="PNG",
            save_all=True,
            append_images=frames[1:],
            duration=125,
            loop=0,
            blend=blend,
        ),
    )


def load_media(path: str | Path) -> np.ndarray:
    """Read a PNG/APNG (or any image PIL reads) as uint8 [H, W, 3], or [T, H, W, 3] if animated."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"media file not found: {path}")
    try:
        with Image.open(path) as img:
            frames = [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(img)]
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise MediaError(f"cannot read media file {path}: {err}") from err
    return frames[0] if len(frames) == 1 else np.stack(frames)
