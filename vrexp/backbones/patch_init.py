"""DCT initialisation of a tiny backbone's patch embedding (``backbone.tiny.patch_init=dct``).

A tiny checklist VLM trains its vision tower from scratch. With a random patch embedding each of its
channels mixes a patch's pixels in a random direction, so fine texture (grain) and edge sharpness
(blur) are buried under the patch's colour until the tower has learnt filters that isolate them,
which the main job's step budget does not allow. The orthonormal DCT basis isolates them from the
first step: a flat patch has only DC coefficients, so every other coefficient measures noise, and
the high spatial frequencies measure how sharp an edge is. Each output channel is one basis
function of the patch: a colour axis (luminance and two opponent axes) times a temporal and a 2-D
spatial cosine. The channels are, in order: every colour axis at DC and at the two lowest spatial
frequencies, the temporal trend and alternation (motion, growth, flicker) at low spatial frequency
when a patch spans more than two frames, then luminance frequencies spread evenly from low to the
highest until the embedding is full. DC channels are scaled to the patch's mean, so they stay on
the scale of the others. Pretrained weights are never touched: only a model built from
``backbone.tiny`` is initialised this way.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

# Luminance and two opponent colour axes: an orthonormal basis of RGB.
COLOR_AXES = np.array(
    [
        np.array([1.0, 1.0, 1.0]) / math.sqrt(3),
        np.array([1.0, -1.0, 0.0]) / math.sqrt(2),
        np.array([1.0, 1.0, -2.0]) / math.sqrt(6),
    ]
)
# Qwen repeats an image over two temporal slots, where temporal coefficients are zero: temporal
# channels are made only for patches spanning more frames than that (video).
MIN_TEMPORAL_FRAMES = 3


def dct_matrix(n: int) -> np.ndarray:
    """[n, n] orthonormal DCT-II basis, one basis vector per row, lowest frequency first."""
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    basis = np.cos(np.pi * (x + 0.5) * k / n) * math.sqrt(2.0 / n)
    basis[0] /= math.sqrt(2.0)
    return basis


def _channels(embed: int, frames: int, patch: int) -> list[tuple[int, int, int, int]]:
    """(colour axis, temporal frequency, vertical, horizontal frequency) of each channel."""
    temporal = (1, frames - 1) if frames >= MIN_TEMPORAL_FRAMES else ()
    first = [
        (c, 0, u, v) for c in range(3) for u in range(patch) for v in range(patch) if u + v <= 1
    ]
    first = [k for k in first if not (k[0] == 0 and k[2] + k[3] == 1)]  # luminance AC comes below
    first += [
        (0, tau, u, v) for tau in temporal for u in range(patch) for v in range(patch) if u + v <= 2
    ]
    luminance = sorted(
        ((0, 0, u, v) for u in range(patch) for v in range(patch) if u + v > 0),
        key=lambda k: (k[2] + k[3], k[2]),
    )
    need = embed - len(first)
    if need <= 0:
        return first[:embed]
    spread = np.unique(np.linspace(0, len(luminance) - 1, need).round().astype(int))
    chosen = first + [luminance[i] for i in spread]
    chosen += [k for k in luminance if k not in chosen][: embed - len(chosen)]
    return chosen


def dct_patch_weight(shape: torch.Size | tuple[int, ...]) -> torch.Tensor:
    """A patch-embedding weight of ``shape`` ([E, 3, P, P] or [E, 3, T, P, P]) made of DCT basis
    functions; more channels than basis functions is an error."""
    if len(shape) == 4:
        return dct_patch_weight((shape[0], shape[1], 1, shape[2], shape[3]))[:, :, 0]
    embed, colors, frames, patch, width = shape
    if colors != 3 or patch != width:
        raise ValueError(f"DCT patch init needs square RGB patches, got a weight of shape {shape}")
    size = colors * frames * patch * patch
    if embed > size:
        raise ValueError(
            f"DCT patch init: {embed} channels but a patch has only {size} values; use "
            "backbone.tiny.patch_init=random or a larger patch"
        )
    spatial, temporal = dct_matrix(patch), dct_matrix(frames)
    weight = np.zeros((embed, colors, frames, patch, patch))
    for e, (c, tau, u, v) in enumerate(_channels(embed, frames, patch)):
        basis = np.einsum("c,t,y,x->ctyx", COLOR_AXES[c], temporal[tau], spatial[u], spatial[v])
        dc = tau == 0 and u == 0 and v == 0
        weight[e] = basis / math.sqrt(frames * patch * patch) if dc else basis
    return torch.tensor(weight, dtype=torch.float32)


def init_patch_embedding(conv: nn.Conv2d | nn.Conv3d) -> None:
    """Set ``conv``'s weight to the DCT basis (its bias, if any, to zero)."""
    with torch.no_grad():
        conv.weight.copy_(dct_patch_weight(conv.weight.shape).to(conv.weight.dtype))
        if conv.bias is not None:
            conv.bias.zero_()
