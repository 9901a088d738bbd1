"""LightningModules that train generators: denoising pretraining / SFT, and Diffusion-DPO.

``GeneratorModule`` regresses the scheduler's target (epsilon, v or flow velocity) on (media,
prompt) batches, dropping prompts at ``cond_dropout`` so classifier-free guidance works.
``DPOModule`` trains on (winner, loser, prompt) batches with :func:`diffusion_dpo_loss`: each pair
shares its noise and timestep; the reference is the base model with LoRA adapters disabled (the
default: no second copy of the generator is held) or a frozen copy of the denoiser.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch

from vrexp.configs.choices import Reference
from vrexp.configs.dpo import DPOConfig
from vrexp.configs.generator_tasks import TrainGeneratorTaskConfig
from vrexp.configs.training import OptimSettings
from vrexp.generators import TextToMediaGenerator
from vrexp.modules.distributed import global_mean, rank_draw
from vrexp.modules.optim import adamw_warmup_cosine, settings_hparams
from vrexp.preference import diffusion_dpo_loss


def item_weights(batch: dict[str, Any], count: int) -> torch.Tensor:
    """[count] weights of a batch's items: 1, or 0 for a rank's filler (vrexp.data.resumable)."""
    weight = batch.get("weight")
    return torch.ones(count) if weight is None else torch.as_tensor(weight, dtype=torch.float32)


class GeneratorModule(pl.LightningModule):
    def __init__(
        self,
        generator: TextToMediaGenerator,
        settings: TrainGeneratorTaskConfig,
    ) -> None:
        super().__init__()
        self.generator, self.settings = generator, settings
        self.save_hyperparameters(settings_hparams(settings))
        self.generator.text_encoders.requires_grad_(settings.train_text_encoder)

    def on_fit_start(self) -> None:
        self.generator.denoiser.train()
        self.generator.text_encoders.train(self.settings.train_text_encoder)

    def denoising_loss(
        self, batch: dict[str, Any], sharded: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(the loss to train on, its mean over the global batch). For a ``sharded`` batch (a
        rank's share of the training batch) dropout, noise and timesteps are drawn for the global
        batch in one process's order and each rank keeps its rows; an unsharded one (validation:
        every rank reads every item) draws for itself."""

        def draw(count: int, fn: Callable[[int], torch.Tensor]) -> torch.Tensor:
            return rank_draw(self, count, fn) if sharded else fn(count)

        latents = self.generator.encode_media(batch["media"])
        prompts = list(batch["prompt"])
        if self.training and self.settings.cond_dropout > 0:
            dropped = draw(len(prompts), torch.rand) < self.settings.cond_dropout
            prompts = ["" if d else p for p, d in zip(prompts, dropped.tolist(), strict=True)]
        cond = self.generator.encode_prompts(prompts)
        shape = latents.shape[1:]
        noise = draw(len(latents), lambda n: torch.randn(n, *shape)).to(latents)
        timesteps = draw(len(latents), self.generator.schedule.sample_timesteps)
        noisy, t_in, target = self.generator.schedule.noisy_and_target(
            latents, noise, timesteps.to(self.device)
        )
        pred = self.generator.denoise(noisy, t_in, cond)
        per_item = (pred.float() - target.float()).pow(2).flatten(1).mean(1)
        weight = item_weights(batch, len(latents)).to(per_item.device)
        return global_mean(self, (per_item * weight).sum(), weight.sum())

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss, mean = self.denoising_loss(batch)
        self.log("train/loss", mean, prog_bar=True, batch_size=len(batch["prompt"]))
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        # Fixed noise and timesteps per batch, so the validation curve is comparable across epochs.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(batch_idx)
            _, loss = self.denoising_loss(batch, sharded=False)
        self.log("val/loss", loss, prog_bar=True, batch_size=len(batch["prompt"]))

    def configure_optimizers(self) -> dict[str, Any]:
        return adamw_warmup_cosine(
            (p for p in self.generator.parameters() if p.requires_grad),
            lr=self.settings.lr,
            weight_decay=self.settings.weight_decay,
            warmup_steps=self.settings.warmup_steps,
            total_steps=self.trainer.estimated_stepping_batches,
        )


class DPOModule(pl.LightningModule):
    def __init__(
        self,
        generator: TextToMediaGenerator,
        optim: OptimSettings,
        dpo: DPOConfig,
        *,
        reference: Reference | str = Reference.lora,
    ) -> None:
        super().__init__()
        if reference not in Reference.values():
            raise ValueError(f"reference must be one of {Reference.values()}, got {reference!r}")
        reference = Reference(reference)
        if reference == "lora" and not generator.has_lora:
            raise ValueError(
                "reference='lora' reads the base model through disabled LoRA adapters; enable them "
                "(generator.lora.enabled=true) or use reference='copy'"
            )
        self.generator, self.optim = generator, optim
        self.beta, self.sft_weight = dpo.beta, dpo.sft_weight
        self.save_hyperparameters(
            {
                **settings_hparams(optim),
                "beta": dpo.beta,
                "sft_weight": dpo.sft_weight,
                "reference": str(reference),
            }
        )
        generator.text_encoders.requires_grad_(False)
        # A frozen copy is held only when asked for. It is a registered submodule (it moves with
        # the module) but frozen and outside configure_optimizers' parameters.
        self.reference = (
            copy.deepcopy(generator.denoiser).requires_grad_(False).eval()
            if reference == "copy"
            else None
        )

    def on_fit_start(self) -> None:
        # from_pretrained leaves parts in eval mode: the policy trains, the frozen parts do not.
        self.generator.denoiser.train()
        self.generator.text_encoders.eval()
        if self.reference is not None:
            self.reference.eval()

    def reference_prediction(
        self, noisy: torch.Tensor, t_in: torch.Tensor, cond: Any
    ) -> torch.Tensor:
        with torch.no_grad():
            if self.reference is not None:
                return self.generator.denoise(noisy, t_in, cond, model=self.reference)
            with self.generator.adapters_disabled():
                return self.generator.denoise(noisy, t_in, cond)

    def dpo_step(self, batch: dict[str, Any]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Loss, implicit accuracy and the winners' SFT loss for a batch of B pairs, each as (the
        value to train on, its mean over the global batch)."""
        media = torch.cat([torch.as_tensor(batch["winner"]), torch.as_tensor(batch["loser"])])
        latents = self.generator.encode_media(media)
        half = len(latents) // 2
        with torch.no_grad():
            cond = self.generator.encode_prompts(list(batch["prompt"]) * 2)
        # Winner and loser of a pair share noise and timestep (Diffusion-DPO); drawn for the
        # global batch, each rank keeping its pairs.
        shape = latents.shape[1:]
        noise = rank_draw(self, half, lambda n: torch.randn(n, *shape)).to(latents)
        noise = noise.repeat(2, *([1] * (latents.dim() - 1)))
        timesteps = rank_draw(self, half, self.generator.schedule.sample_timesteps)
        timesteps = timesteps.to(self.device).repeat(2)
        noisy, t_in, target = self.generator.schedule.noisy_and_target(latents, noise, timesteps)
        pred = self.generator.denoise(noisy, t_in, cond)
        ref = self.reference_prediction(noisy, t_in, cond)
        loss, accuracy = diffusion_dpo_loss(
            pred.float(), ref.float(), target.float(), self.beta, reduction="none"
        )
        sft = (pred[:half].float() - target[:half].float()).pow(2).flatten(1).mean(1)
        weight = item_weights(batch, half).to(loss.device)
        out = {}
        for key, value in (("dpo_loss", loss), ("implicit_acc", accuracy), ("sft_loss", sft)):
            out[key] = global_mean(self, (value * weight).sum(), weight.sum())
        return out

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        out = self.dpo_step(batch)
        loss = out["dpo_loss"][0] + self.sft_weight * out["sft_loss"][0]
        mean = out["dpo_loss"][1] + self.sft_weight * out["sft_loss"][1]
        size = len(batch["prompt"])
        self.log("train/loss", mean, prog_bar=True, batch_size=size)
        for key, (_, value) in out.items():
            self.log(f"train/{key}", value, batch_size=size)
        return loss

    def configure_optimizers(self) -> dict[str, Any]:
        return adamw_warmup_cosine(
            (p for p in self.generator.denoiser.parameters() if p.requires_grad),
            lr=self.optim.lr,
            weight_decay=self.optim.weight_decay,
            warmup_steps=self.optim.warmup_steps,
            total_steps=self.trainer.estimated_stepping_batches,
        )
