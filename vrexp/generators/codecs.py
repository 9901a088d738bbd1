"""Codecs between media pixels and the latents a denoiser works on.

``SpaceToDepth`` is the tiny generators' latent space: a lossless ``pixel_unshuffle`` that folds
f x f pixel blocks into channels (64 x 64 x 3 -> 16 x 16 x 48 at f = 4). It needs no training, costs
nothing, and a denoiser on it generates full-resolution media at the cost of a 16 x 16 model, which
is what lets a generator pretrain on a laptop CPU in minutes. Real checkpoints use their VAE.

Media are uint8 ``[B, H, W, 3]`` images or ``[B, T, H, W, 3]`` videos, as SynthWorld stores them;
latents are ``[B, C, h, w]`` (images) or ``[B, T, C, h, w]`` (videos, CogVideoX's layout).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def to_unit(media: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 ``[..., H, W, 3]`` -> float ``[..., 3, H, W]`` in [-1, 1]."""
    pixels = torch.as_tensor(np.asarray(media)) if not torch.is_tensor(media) else media
    if pixels.dtype != torch.uint8 or pixels.shape[-1] != 3:
        raise ValueError(
            f"media must be uint8 [..., H, W, 3], got {pixels.dtype} {tuple(pixels.shape)}"
        )
    return pixels.movedim(-1, -3).float() / 127.5 - 1.0


def from_unit(pixels: torch.Tensor) -> np.ndarray:
    """float ``[..., 3, H, W]`` in [-1, 1] -> uint8 ``[..., H, W, 3]``."""
    out = ((pixels.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return out.movedim(-3, -1).cpu().numpy()


class SpaceToDepth(nn.Module):
    """Lossless pixel <-> latent map by ``pixel_unshuffle``; no parameters."""

    def __init__(self, factor: int) -> None:
        super().__init__()
        if factor < 1:
            raise ValueError(f"space_to_depth factor must be >= 1, got {factor}")
        self.factor = factor

    def latent_channels(self) -> int:
        return 3 * self.factor**2

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """``[B, (T,) 3, H, W]`` in [-1, 1] -> latents."""
        lead = pixels.shape[:-3]
        flat = pixels.reshape(-1, *pixels.shape[-3:])
        if flat.shape[-1] % self.factor or flat.shape[-2] % self.factor:
            raise ValueError(
                f"media size {tuple(flat.shape[-2:])} is not divisible by space_to_depth={self.factor}"
            )
        latents = F.pixel_unshuffle(flat, self.factor)
        return latents.reshape(*lead, *latents.shape[-3:])

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        lead = latents.shape[:-3]
        pixels = F.pixel_shuffle(latents.reshape(-1, *latents.shape[-3:]), self.factor)
        return pixels.reshape(*lead, *pixels.shape[-3:])


class VaeCodec(nn.Module):
    """A diffusers VAE (``AutoencoderKL`` or ``AutoencoderKLCogVideoX``) with its scaling factor."""

    def __init__(self, vae: nn.Module, video: bool = False) -> None:
        super().__init__()
        self.vae, self.video = vae, video
        self.scaling_factor = float(vae.config.scaling_factor)

    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels)

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        pixels = pixels.to(self.vae.dtype)
        if self.video:  # the CogVideoX VAE takes [B, 3, T, H, W] and returns [B, C, t, h, w]
            latents = self.vae.encode(pixels.transpose(1, 2)).latent_dist.sample()
            return latents.transpose(1, 2) * self.scaling_factor
        return self.vae.encode(pixels).latent_dist.sample() * self.scaling_factor

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        latents = latents.to(self.vae.dtype) / self.scaling_factor
        if self.video:
            return self.vae.decode(latents.transpose(1, 2)).sample.transpose(1, 2)
        return self.vae.decode(latents).sample
