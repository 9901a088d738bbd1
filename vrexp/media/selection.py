"""Which frames of a video reach the model: :func:`select_frames`, from timestamps alone.

A pure function of the frames' presentation times and a :class:`~vrexp.configs.FrameSampling`, so
the readers decode only what it picks and a test can check it on any timestamps. The rules are in
docs/media.md §3.
"""

from __future__ import annotations

import numpy as np

from vrexp.configs import FrameSampling
from vrexp.configs.choices import FrameSelection

# The released VisionReward-Video scorer reads at most 24 frames, one per second.
OFFICIAL_MAX_FRAMES = 24


def select_frames(timestamps: np.ndarray, sampling: FrameSampling) -> np.ndarray:
    """int64 indices (sorted, unique) of the frames ``sampling`` picks from ``timestamps``.

    ``timestamps`` are the frames' presentation times in seconds, non-decreasing.

    - ``count``: ``num_frames`` frames evenly spaced in time from the first to the last frame,
      the nearest frame to each target time (every frame of a shorter clip);
    - ``fps``: one frame every ``1 / fps`` seconds from the first, up to ``num_frames`` frames;
    - ``official``: the frame nearest each whole second from the first frame, seconds 0 to
      ``min(num_frames, OFFICIAL_MAX_FRAMES) - 1`` (the released VisionReward-Video scorer).

    For ``fps`` and ``official`` a target time takes the nearest frame within half a period of it
    (the earlier of two equally near); a target with no frame that close takes none.
    """
    times = np.asarray(timestamps, dtype=np.float64)
    if times.ndim != 1 or not np.all(np.isfinite(times)) or np.any(np.diff(times) < 0):
        raise ValueError("timestamps must be a 1-d array of finite, non-decreasing seconds")
    if len(times) == 0:
        return np.zeros(0, dtype=np.int64)
    rule = FrameSelection(sampling.select)
    if rule == FrameSelection.count:
        return _evenly_spaced(times, sampling.num_frames)
    if rule == FrameSelection.fps:
        picks, _ = _nearest_per_period(times, float(sampling.fps))
        return picks[: sampling.num_frames]
    picks, seconds = _nearest_per_period(times, 1.0)
    return picks[seconds < min(sampling.num_frames, OFFICIAL_MAX_FRAMES)]


def _nearest(times: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Index of the frame nearest each target time (the earlier one on a tie)."""
    after = np.searchsorted(times, targets, side="left").clip(1, len(times) - 1)
    before = after - 1
    take_before = np.abs(targets - times[before]) <= np.abs(times[after] - targets)
    return np.where(take_before, before, after).astype(np.int64)


def _evenly_spaced(times: np.ndarray, count: int) -> np.ndarray:
    if len(times) <= count:
        return np.arange(len(times), dtype=np.int64)
    targets = np.linspace(times[0], times[-1], count)
    picks = _nearest(times, targets)
    if np.all(np.diff(picks) > 0):
        return picks
    # Uneven timestamps can give two targets one nearest frame; choosing in order, each target
    # from the frames after the previous choice that leave one for every later target, keeps
    # the count exact (a batch of clips needs equal frame counts).
    chosen = np.empty(count, dtype=np.int64)
    start = 0
    for k, target in enumerate(targets):
        window = times[start : len(times) - (count - k) + 1]
        chosen[k] = start + (_nearest(window, np.array([target]))[0] if len(window) > 1 else 0)
        start = chosen[k] + 1
    return chosen


def _nearest_per_period(times: np.ndarray, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Per target time ``k / rate`` after the first frame that has a frame within half a period:
    that nearest frame (the earlier on a tie), and ``k``.

    A frame belongs to the target its offset rounds to, half to even as Python's ``round`` in the
    released scorer (a frame at exactly 2.5 s belongs to second 2): the target range then ends at
    the last frame's, as the scorer's ``round(max(timestamps))``. The targets' windows are
    disjoint, so the frames are distinct, and applying the rule again to them picks them all.
    """
    offset = (times - times[0]) * rate
    target = np.rint(offset).astype(np.int64)
    order = np.lexsort((np.arange(len(times)), np.abs(offset - target), target))
    first = np.r_[True, target[order][1:] != target[order][:-1]]
    picks = np.sort(order[first])
    return picks, target[picks]
