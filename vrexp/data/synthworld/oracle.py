"""SynthWorld pixel oracle: factor levels measured from pixels and the prompt alone.

The oracle never sees the plan. It measures one statistic per factor (mirror IoU for symmetry,
transition-band width for blur, robust residual spread for grain, frame-to-frame centroid motion,
and so on) and cuts it at fixed thresholds, one per option boundary. Each checklist question is a
threshold on its factor's statistic, so the oracle answers every question of a SynthWorld checklist
and can judge generated media as well as rendered ones. Thresholds sit between the renderer's level
parameters (see ``render.py``); ``tests/test_synthworld.py`` checks the agreement.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from vrexp.data.synthworld.grammar import BACKGROUNDS, OBJECT_COLORS, PromptSpec, parse_prompt
from vrexp.data.synthworld.render import EYE_HALF, EYE_OFFSETS, SHAPE_REACH
from vrexp.data.synthworld.world import ABSENT

SATURATED = 0.42
FACE_HUE = (35.0, 80.0)
HAZARD_HUE = (280.0, 335.0)
SHAPE_AREA = {  # area of a unit-size shape as drawn by render.shape_mask
    "circle": np.pi * SHAPE_REACH["circle"] ** 2,
    "square": (2 * SHAPE_REACH["square"]) ** 2,
    "diamond": 2 * SHAPE_REACH["diamond"] ** 2,
}
_COLOR_HUES = {
    name: float(np.degrees(np.arctan2(*_hue_xy))) % 360
    for name, _hue_xy in (
        (n, (np.sqrt(3) * (c[1] - c[2]), 2 * c[0] - c[1] - c[2])) for n, c in OBJECT_COLORS.items()
    )
}


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _hue_sat(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    hue = np.degrees(np.arctan2(np.sqrt(3) * (g - b), 2 * r - g - b)) % 360
    hi = rgb.max(axis=-1)
    sat = (hi - rgb.min(axis=-1)) / np.maximum(hi, 1e-6)
    return hue, sat


def _hue_distance(a: float, b: float) -> float:
    return min(abs(a - b), 360.0 - abs(a - b))


def _in_hue(hue: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    return (hue >= window[0]) & (hue <= window[1])


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """The biggest blob; blurred object edges can pass through the face's hue range."""
    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask
    areas = ndimage.sum_labels(mask, labels, index=np.arange(1, n + 1))
    return labels == int(np.argmax(areas)) + 1


@dataclass
class FrameStats:
    """Statistics of one frame; a video's factors combine them over time."""

    brightness: float
    grain: float
    count: int
    color: str | None
    size: float
    symmetry: float
    blur: float
    centroid_y: float
    face_eyes: int | None
    hazard_area: float


def frame_stats(frame: np.ndarray, spec: PromptSpec) -> FrameStats:
    size = frame.shape[0]
    unit = size / 64.0
    rgb = frame.astype(np.float32) / 255.0
    smooth = ndimage.median_filter(rgb, size=(3, 3, 1), mode="nearest")
    hue, sat = _hue_sat(smooth)
    saturated = sat > SATURATED
    face = _largest_component(saturated & _in_hue(hue, FACE_HUE))
    hazard = saturated & _in_hue(hue, HAZARD_HUE)
    objects = saturated & ~face & ~hazard
    objects = ndimage.binary_opening(objects)  # drop isolated noisy pixels
    foreground = ndimage.binary_dilation(objects | face | hazard, iterations=3)
    lum = _luminance(rgb)
    background = ~foreground
    bg_lum = float(np.median(_luminance(smooth)[background])) if background.any() else 0.0
    brightness = bg_lum / float(_luminance(np.array(BACKGROUNDS[spec.background], np.float32)))

    # Grain: robust spread of the residual after a median filter, on flat background pixels.
    residual = lum - ndimage.median_filter(lum, size=3, mode="nearest")
    flat = ndimage.binary_erosion(background, iterations=2)
    grain = float(1.4826 * np.median(np.abs(residual[flat]))) if flat.any() else 0.0

    labels, n = ndimage.label(objects)
    areas = ndimage.sum_labels(objects, labels, index=np.arange(1, n + 1)) if n else np.zeros(0)
    keep = areas >= 6 * unit**2
    count = int(keep.sum())
    symmetry = float(
        (objects & objects[:, ::-1]).sum() / max((objects | objects[:, ::-1]).sum(), 1)
    )
    color, size, blur, centroid_y = None, 0.0, float("inf"), float("nan")
    if count:
        h = np.radians(hue[np.isin(labels, np.flatnonzero(keep) + 1)])
        mean_hue = np.degrees(np.arctan2(np.sin(h).mean(), np.cos(h).mean())) % 360
        color = min(_COLOR_HUES, key=lambda c: _hue_distance(_COLOR_HUES[c], mean_hue))
        # Coverage of the object colour per pixel, from the reference colours of the prompt and
        # the measured gain (a small blurred object never reaches its full colour itself). Blur
        # preserves its sum, so size and centroid come out unbiased by blur.
        obj_rgb = np.array(OBJECT_COLORS[color], np.float32) * brightness
        bg_rgb = np.array(BACKGROUNDS[spec.background], np.float32) * brightness
        span = obj_rgb - bg_rgb
        mix = ((smooth - bg_rgb) @ span) / max(float(span @ span), 1e-6)
        region = ndimage.binary_dilation(
            objects, iterations=int(4 * unit) + 1
        ) & ~ndimage.binary_dilation(face | hazard, iterations=2)
        mass = np.clip(mix, -0.5, 1.5) * region
        size = float(np.sqrt(max(mass.sum(), 0.0) / count / SHAPE_AREA[spec.shape]) / unit)
        rows = np.arange(size_px := frame.shape[0], dtype=np.float32) + 0.5
        centroid_y = float((mass.sum(axis=1) @ rows) / max(mass.sum(), 1e-6) * 64.0 / size_px)
        # Blur: inverse of the steepest colour step across object edges (1 for a sharp edge,
        # about 2.5 sigma for a Gaussian blur). The median filter keeps monotone ramps, so it
        # removes grain without changing the edge profile.
        step = np.zeros_like(mix)
        step[:, :-1] = np.abs(np.diff(mix, axis=1))
        step[:-1, :] = np.maximum(step[:-1, :], np.abs(np.diff(mix, axis=0)))
        boundary = objects & ~ndimage.binary_erosion(objects)
        blur = float(1.0 / max(np.median(ndimage.maximum_filter(step, size=3)[boundary]), 1e-3))

    face_eyes = None
    if face.sum() >= 40 * unit**2:
        ys_f, xs_f = np.nonzero(face)
        cy, cx = (ys_f.min() + ys_f.max() + 1) / 2, (xs_f.min() + xs_f.max() + 1) / 2
        face_lum = float(np.median(lum[face]))
        face_eyes = 0
        for dx, dy in EYE_OFFSETS:
            ey, ex = round(cy + dy * unit), round(cx + dx * unit)
            half = max(round(EYE_HALF * unit), 1)
            patch = lum[max(ey - half, 0) : ey + half, max(ex - half, 0) : ex + half]
            face_eyes += int(patch.size > 0 and patch.mean() < 0.88 * face_lum)
    return FrameStats(
        brightness=brightness,
        grain=grain,
        count=count,
        color=color,
        size=size,
        symmetry=symmetry,
        blur=blur,
        centroid_y=centroid_y,
        face_eyes=face_eyes,
        hazard_area=float(hazard.sum() / unit**2),
    )


def _cut(value: float, thresholds: tuple[float, ...], higher_is_better: bool) -> int:
    """Level = number of boundaries the value fails (thresholds listed best boundary first)."""
    if higher_is_better:
        return int(sum(value < t for t in thresholds))
    return int(sum(value > t for t in thresholds))


# Boundaries (best first) on each statistic; they sit between the renderer's level parameters.
THRESHOLDS = {
    "symmetry": ((0.75, 0.2), True),
    "prominence_image": ((12.0, 8.4), True),
    "prominence_video": ((12.5, 9.6), True),
    "clarity_image": ((1.42, 2.5, 4.2), False),
    "clarity_video": ((1.55, 2.85), False),
    "brightness": ((0.86, 0.61), True),
    "grain": ((0.009, 0.026), False),
    "hazard": ((6.0, 70.0), False),
    "flicker": ((0.06, 0.2), False),
    "motion": ((1.5, 0.5), True),
    "continuity": ((0.5, 2.5), False),
    "preservation": ((0.89, 0.66), True),
}


def alignment_level(count: int, color: str | None, spec: PromptSpec) -> int:
    """Alignment level of media showing ``count`` objects of ``color`` against the prompt ``spec``:
    one level per attribute (count, colour) that differs."""
    return int(count != spec.count) + int(color != spec.color)


def _face(eyes: int | None) -> int:
    return ABSENT if eyes is None else 2 - eyes


@dataclass(frozen=True)
class Observation:
    """What the oracle sees in one media: its factor levels, and the object count and colour it
    judged alignment on (prompt-independent, so alignment against any other prompt follows from
    them: :func:`alignment_level`)."""

    levels: dict[str, int]
    count: int
    color: str | None


def _observe_image(image: np.ndarray, spec: PromptSpec) -> Observation:
    s = frame_stats(image, spec)
    levels = {
        "alignment": alignment_level(s.count, s.color, spec),
        "symmetry": _cut(s.symmetry, *THRESHOLDS["symmetry"]),
        "prominence": _cut(s.size, *THRESHOLDS["prominence_image"]),
        "clarity": _cut(s.blur, *THRESHOLDS["clarity_image"]),
        "brightness": _cut(s.brightness, *THRESHOLDS["brightness"]),
        "grain": _cut(s.grain, *THRESHOLDS["grain"]),
        "face": _face(s.face_eyes),
        "hazard": _cut(s.hazard_area, *THRESHOLDS["hazard"]),
    }
    return Observation(levels, s.count, s.color)


def _observe_video(video: np.ndarray, spec: PromptSpec) -> Observation:
    stats = [frame_stats(frame, spec) for frame in video]
    first = stats[0]
    bright = np.array([s.brightness for s in stats])
    ys = np.array([s.centroid_y for s in stats])
    steps = np.diff(ys)
    steps = steps[np.isfinite(steps)]
    speed = float(np.median(np.abs(steps))) if steps.size else 0.0
    jumps = int((np.abs(steps - np.median(steps)) > 4.0).sum()) if steps.size else 0
    sizes = np.array([s.size for s in stats])
    ratio = float(sizes[-1] / sizes[0]) if sizes[0] > 0 else 0.0
    eyes = [s.face_eyes for s in stats]
    face_eyes = None if any(e is None for e in eyes) else int(np.median(eyes))
    levels = {
        "alignment": alignment_level(first.count, first.color, spec),
        "prominence": _cut(first.size, *THRESHOLDS["prominence_video"]),
        "clarity": _cut(float(np.median([s.blur for s in stats])), *THRESHOLDS["clarity_video"]),
        "brightness": _cut(float(bright.max()), *THRESHOLDS["brightness"]),
        "grain": _cut(float(np.median([s.grain for s in stats])), *THRESHOLDS["grain"]),
        "face": _face(face_eyes),
        "hazard": _cut(float(np.median([s.hazard_area for s in stats])), *THRESHOLDS["hazard"]),
        "flicker": _cut(
            float((bright.max() - bright.min()) / max(bright.max(), 1e-6)), *THRESHOLDS["flicker"]
        ),
        "motion": _cut(speed, *THRESHOLDS["motion"]),
        "continuity": _cut(float(jumps), *THRESHOLDS["continuity"]),
        "preservation": _cut(ratio, *THRESHOLDS["preservation"]),
    }
    return Observation(levels, first.count, first.color)


def observe(media: np.ndarray, prompt: str | PromptSpec) -> Observation:
    """The oracle's view of an image ([H, W, 3]) or a video ([T, H, W, 3]) against its prompt."""
    if media.dtype != np.uint8 or media.ndim not in (3, 4) or media.shape[-1] != 3:
        raise ValueError(
            f"oracle needs uint8 RGB media [H, W, 3] or [T, H, W, 3], got {media.dtype} {media.shape}"
        )
    spec = parse_prompt(prompt) if isinstance(prompt, str) else prompt
    return _observe_video(media, spec) if media.ndim == 4 else _observe_image(media, spec)


def measure(media: np.ndarray, prompt: str | PromptSpec) -> dict[str, int]:
    """Factor levels of an image ([H, W, 3]) or a video ([T, H, W, 3])."""
    return observe(media, prompt).levels
