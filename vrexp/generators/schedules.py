"""Noise schedules for training and sampling, by prediction target: epsilon, v-prediction or flow.

Training draws a timestep, noises the clean latents and returns the regression target the
denoiser is trained on; sampling walks a diffusers scheduler from noise to latents. One object
owns both, so the target a model is trained on and the sampler that reads it cannot disagree.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import (
    CogVideoXDDIMScheduler,
    DDIMScheduler,
    DDPMScheduler,
    FlowMatchEulerDiscreteScheduler,
    SchedulerMixin,
)

from vrexp.configs.choices import PredictionType

PREDICTION_TYPES = tuple(PredictionType.values())  # the valid targets, from their one home


class NoiseSchedule:
    """Forward noising and targets for one prediction type, over ``num_train_timesteps`` steps."""

    def __init__(self, scheduler: SchedulerMixin) -> None:
        self.scheduler = scheduler
        self.prediction_type = prediction_type_of(scheduler)
        self.num_train_timesteps = int(scheduler.config.num_train_timesteps)

    @classmethod
    def create(cls, prediction_type: str, num_train_timesteps: int = 1000) -> NoiseSchedule:
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(
                f"prediction_type={prediction_type!r}; expected one of {PREDICTION_TYPES}"
            )
        if prediction_type == "flow":
            return cls(FlowMatchEulerDiscreteScheduler(num_train_timesteps=num_train_timesteps))
        # Tiny generators denoise lossless pixel latents in [-1, 1]: the cosine schedule suits
        # them better than SD's scaled_linear, and clipping the predicted clean sample keeps an
        # undertrained model's early (high-noise) predictions from blowing up when sampling.
        return cls(
            DDPMScheduler(
                num_train_timesteps=num_train_timesteps,
                beta_schedule="squaredcos_cap_v2",
                prediction_type=prediction_type,
                clip_sample=True,
                steps_offset=1,
            )
        )

    @classmethod
    def for_training(cls, scheduler: SchedulerMixin) -> NoiseSchedule:
        """A checkpoint's schedule for training. Inference-only schedulers (Euler, DPM-Solver)
        are swapped for ``DDPMScheduler`` on the same betas, as the Diffusion-DPO script does."""
        if isinstance(
            scheduler,
            DDPMScheduler
            | DDIMScheduler
            | CogVideoXDDIMScheduler
            | FlowMatchEulerDiscreteScheduler,
        ):
            return cls(scheduler)
        return cls(DDPMScheduler.from_config(scheduler.config))

    def sample_timesteps(
        self, batch: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return torch.randint(0, self.num_train_timesteps, (batch,), generator=generator)

    def noisy_and_target(
        self, clean: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(noisy latents, the denoiser's timestep input, the regression target)."""
        timesteps = timesteps.to(clean.device)
        if self.prediction_type == "flow":
            # Rectified flow: x_t = (1 - s) x_0 + s noise, the model predicts the velocity noise - x_0.
            sigma = (timesteps.to(clean.dtype) + 1) / self.num_train_timesteps
            sigma = sigma.view(-1, *([1] * (clean.dim() - 1)))
            noisy = (1 - sigma) * clean + sigma * noise
            return noisy, sigma.flatten() * self.num_train_timesteps, noise - clean
        noisy = self.scheduler.add_noise(clean, noise, timesteps)
        if self.prediction_type == "epsilon":
            return noisy, timesteps, noise
        return noisy, timesteps, self.scheduler.get_velocity(clean, noise, timesteps)

    def sampler(self) -> SchedulerMixin:
        """A fresh inference scheduler (DDIM for DDPM-trained models, Euler for flow)."""
        if self.prediction_type == "flow":
            return FlowMatchEulerDiscreteScheduler.from_config(self.scheduler.config)
        if isinstance(self.scheduler, DDPMScheduler):
            return DDIMScheduler.from_config(self.scheduler.config)
        return type(self.scheduler).from_config(self.scheduler.config)


def prediction_type_of(scheduler: Any) -> str:
    if isinstance(scheduler, FlowMatchEulerDiscreteScheduler):
        return "flow"
    kind = scheduler.config.get("prediction_type", "epsilon")
    if kind not in ("epsilon", "v_prediction"):
        raise ValueError(f"unsupported scheduler prediction_type {kind!r}")
    return kind
