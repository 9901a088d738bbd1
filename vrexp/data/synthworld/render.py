"""SynthWorld renderer: a plan becomes pixels (an image [H, W, 3] or a video [T, H, W, 3], uint8).

The scene lives on a 64-unit canvas scaled to ``size`` pixels: a pastel background, the prompt's
objects in the lower band, an optional smiley face top-left and an optional hazard mark top-right.
Each factor level maps to one physical parameter below (``*_BY_LEVEL``). Degradations are applied
in a fixed order (blur, brightness, grain) so that the oracle can measure each one separately.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.ndimage import gaussian_filter

from vrexp.data.synthworld.grammar import (
    BACKGROUNDS,
    FACE_COLOR,
    HAZARD_COLOR,
    OBJECT_COLORS,
    PromptSpec,
)
from vrexp.data.synthworld.world import ABSENT, MAX_COUNT, Plan

# Physical parameter per level (level 0 is the best option). Lengths are in 64-unit canvas units.
OBJECT_SIZE_BY_LEVEL = {"image": (14.0, 10.0, 7.0), "video": (14.0, 11.0, 8.5)}
SYMMETRY_OFFSET_BY_LEVEL = (0.0, 0.35, 0.8)  # times the object extent
BLUR_SIGMA_BY_LEVEL = {"image": (0.0, 0.7, 1.3, 2.1), "video": (0.0, 0.8, 1.6)}
BRIGHTNESS_BY_LEVEL = (1.0, 0.72, 0.5)
GRAIN_SIGMA_BY_LEVEL = (0.0, 0.03, 0.06)  # in [0, 1] intensity units
HAZARD_SIDE_BY_LEVEL = (0.0, 6.0, 12.0)
FLICKER_BY_LEVEL = (0.0, 0.12, 0.3)  # odd frames are dimmed by this fraction
TRAVEL_BY_LEVEL = (14.0, 7.0, 0.0)  # vertical travel over the clip
JUMPS_BY_LEVEL = (0, 1, 3)
JUMP_SIZE = 8.0
FINAL_SCALE_BY_LEVEL = (1.0, 0.78, 0.55)

FACE_CENTER = (12.0, 11.0)
FACE_RADIUS = 8.0
EYE_OFFSETS = ((-3.5, -2.0), (3.5, -2.0))  # (dx, dy) from the face centre
EYE_HALF = 2.0
HAZARD_CENTER = (52.0, 11.0)
SHAPE_REACH = {"circle": 0.5, "square": 0.5, "diamond": 0.55}  # half-extent per unit size


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in canvas units, so mirror symmetry about x=32 is exact."""
    scale = 64.0 / size
    coords = (np.arange(size, dtype=np.float32) + 0.5) * scale
    return coords[None, :], coords[:, None]


def shape_mask(size: int, shape: str, cx: float, cy: float, diameter: float) -> np.ndarray:
    xs, ys = _grid(size)
    reach = SHAPE_REACH[shape] * diameter
    dx, dy = np.abs(xs - cx), np.abs(ys - cy)
    if shape == "circle":
        return dx**2 + dy**2 <= reach**2
    if shape == "square":
        return (dx <= reach) & (dy <= reach)
    return dx + dy <= reach


def image_positions(count: int, offset: float, jitter: tuple[float, float]) -> list[tuple]:
    """Object centres; ``offset`` breaks mirror symmetry (right partners move in, centres right)."""
    jx, jy = jitter
    left, right = (14.0 - jx, 50.0 + jx - offset)
    centre = 32.0 + offset / 2
    layouts = {
        1: [(centre, 42.0)],
        2: [(left, 42.0), (right, 42.0)],
        3: [(left, 31.0), (right, 31.0), (centre, 52.0)],
        4: [(left, 31.0), (right, 31.0), (left, 52.0), (right, 52.0)],
    }
    return [(x, y + jy) for x, y in layouts[count]]


VIDEO_COLUMNS = {1: (32.0,), 2: (20.0, 44.0), 3: (11.0, 32.0, 53.0)}


def _rendered_attributes(plan: Plan, rng: np.random.Generator) -> tuple[int, str]:
    """Count and color actually drawn: alignment level 1 gets one of them wrong, level 2 both."""
    spec = plan.spec
    level = plan.levels["alignment"]
    wrong = (
        set()
        if level == 0
        else {"count", "color"}
        if level == 2
        else {rng.choice(["count", "color"])}
    )
    count, color = spec.count, spec.color
    max_count = MAX_COUNT["video" if "motion" in plan.levels else "image"]
    if "count" in wrong:
        count = int(rng.choice([c for c in range(1, max_count + 1) if c != spec.count]))
    if "color" in wrong:
        color = str(rng.choice([c for c in OBJECT_COLORS if c != spec.color]))
    return count, color


def _draw_overlays(canvas: np.ndarray, plan: Plan, size: int, rng: np.random.Generator) -> None:
    face_level = plan.levels["face"]
    if face_level != ABSENT:
        fx, fy = FACE_CENTER[0] + rng.uniform(-1, 1), FACE_CENTER[1] + rng.uniform(-1, 1)
        canvas[shape_mask(size, "circle", fx, fy, 2 * FACE_RADIUS)] = FACE_COLOR
        eyes = list(EYE_OFFSETS)
        if face_level == 1:
            eyes.pop(int(rng.integers(2)))
        elif face_level == 2:
            eyes = []
        for dx, dy in eyes:
            canvas[shape_mask(size, "square", fx + dx, fy + dy, 2 * EYE_HALF)] = (0.05, 0.05, 0.05)
    side = HAZARD_SIDE_BY_LEVEL[plan.levels["hazard"]]
    if side:
        canvas[shape_mask(size, "square", *HAZARD_CENTER, side)] = HAZARD_COLOR


def _degrade(
    canvas: np.ndarray, sigma: float, gain: float, grain: float, rng: np.random.Generator
) -> np.ndarray:
    size = canvas.shape[0]
    if sigma > 0:
        canvas = gaussian_filter(
            canvas, sigma=(sigma * size / 64, sigma * size / 64, 0), mode="nearest"
        )
    canvas = canvas * gain
    if grain > 0:
        canvas = canvas + rng.normal(0.0, grain, canvas.shape).astype(np.float32)
    return (np.clip(canvas, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def render(
    plan: Plan, size: int = 64, num_frames: int = 8, seed: int | np.random.SeedSequence = 0
) -> np.ndarray:
    """Render ``plan``: an image [size, size, 3], or a video [num_frames, size, size, 3] when the
    plan has video factors. Deterministic for a given ``seed``."""
    rng = np.random.default_rng(seed)
    video = "motion" in plan.levels
    media = "video" if video else "image"
    spec: PromptSpec = plan.spec
    lv = plan.levels
    count, color = _rendered_attributes(plan, rng)
    diameter = OBJECT_SIZE_BY_LEVEL[media][lv["prominence"]]
    background = np.empty((size, size, 3), dtype=np.float32)
    background[:] = BACKGROUNDS[spec.background]
    sigma = BLUR_SIGMA_BY_LEVEL[media][lv["clarity"]]
    gain = BRIGHTNESS_BY_LEVEL[lv["brightness"]]
    grain = GRAIN_SIGMA_BY_LEVEL[lv["grain"]]

    if not video:
        canvas = background
        offset = SYMMETRY_OFFSET_BY_LEVEL[lv["symmetry"]] * 2 * SHAPE_REACH[spec.shape] * diameter
        jitter = (float(rng.uniform(-2, 2)), float(rng.uniform(-2, 2)))
        for cx, cy in image_positions(count, offset, jitter):
            canvas[shape_mask(size, spec.shape, cx, cy, diameter)] = OBJECT_COLORS[color]
        _draw_overlays(canvas, plan, size, rng)
        return _degrade(canvas, sigma, gain, grain, rng)

    overlay = background.copy()
    _draw_overlays(overlay, plan, size, rng)
    overlay_mask = np.any(overlay != background, axis=-1)
    t = np.arange(num_frames, dtype=np.float64)
    travel = TRAVEL_BY_LEVEL[lv["motion"]]
    y = 42.0 + travel * (t / max(num_frames - 1, 1) - 0.5)
    jumps = JUMPS_BY_LEVEL[lv["continuity"]]
    if jumps:
        starts = np.sort(rng.choice(np.arange(2, num_frames - 1), size=jumps, replace=False))
        toggles = np.zeros(num_frames)
        toggles[starts] = 1
        y = y + JUMP_SIZE * (np.cumsum(toggles) % 2) - JUMP_SIZE / 2
    scale = 1.0 + (FINAL_SCALE_BY_LEVEL[lv["preservation"]] - 1.0) * t / max(num_frames - 1, 1)
    dim = FLICKER_BY_LEVEL[lv["flicker"]]
    x_jitter = float(rng.uniform(-1.0, 1.0))
    frames = np.empty((num_frames, size, size, 3), dtype=np.uint8)
    for i in range(num_frames):
        canvas = background.copy()
        for cx in VIDEO_COLUMNS[count]:
            mask = shape_mask(size, spec.shape, cx + x_jitter, y[i], diameter * scale[i])
            canvas[mask] = OBJECT_COLORS[color]
        canvas[overlay_mask] = overlay[overlay_mask]
        frame_gain = gain * (1.0 - dim * (i % 2))
        frames[i] = _degrade(canvas, sigma, frame_gain, grain, rng)
    return frames
