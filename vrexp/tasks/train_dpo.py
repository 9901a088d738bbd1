"""Stage ``train_dpo``: Diffusion-DPO of a generator on the pairs of ``build_pairs``.

LoRA adapters on the denoiser are trained and the reference is the base with them disabled (the
default), or the whole denoiser is trained against a frozen copy (``task.reference=copy``). With
``task.reward_dir`` set, periodic samples are scored (reward_curve.json; PAPER.md Fig. 11). The
tuned generator is saved with the adapters merged, as a plain generator folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning.loggers import Logger
from rich.console import Console

from vrexp.data.generation import GenerationDataModule, PreferencePairDataset
from vrexp.data.prompts import prompts_from
from vrexp.modules import DPOModule
from vrexp.modules.reward_curve import RewardCurve
from vrexp.reward import VisionReward
from vrexp.tasks.build_pairs import read_pairs_rows
from vrexp.tasks.sample import load_or_build_generator, noise_seed, synthworld_judge
from vrexp.tasks.train_generator import step_limits
from vrexp.tracking import stage_logger


def train_dpo(cfg: DictConfig, logger: Logger | None = None) -> dict[str, Any]:
    task, dpo = cfg.task, cfg.dpo
    pl.seed_everything(cfg.seed, workers=True)
    generator = load_or_build_generator(cfg, task.generator_dir)
    if task.reference == "lora":
        lora = cfg.generator.lora
        generator.add_lora(lora.r, lora.alpha, lora.target_modules, lora.dropout)
    module = DPOModule(
        generator,
        beta=dpo.beta,
        lr=task.lr,
        weight_decay=task.weight_decay,
        warmup_steps=task.warmup_steps,
        reference=task.reference,
        sft_weight=dpo.sft_weight,
    )
    rows = read_pairs_rows(task.pairs)
    data = GenerationDataModule(
        PreferencePairDataset(rows), batch_size=task.batch_size, seed=cfg.seed
    )
    callbacks = []
    curve = None
    if task.reward_dir:
        prompts = prompts_from(task.curve_prompts, "video" if generator.video else "image")
        curve = RewardCurve(
            VisionReward.from_pretrained(task.reward_dir),
            prompts,
            [noise_seed(task.curve_prompts.seed, p, 0) for p in range(len(prompts))],
            every_n_steps=task.curve_every_n_steps,
            judge=synthworld_judge(cfg),
        )
        callbacks.append(curve)
    with stage_logger(cfg, logger) as logger:
        trainer = instantiate(
            cfg.trainer,
            logger=logger if logger is not None else False,
            enable_checkpointing=False,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            callbacks=callbacks,
            **step_limits(task),
        )
        trainer.fit(module, datamodule=data)
    generator.merge_lora()
    save_dir = Path(task.save_dir)
    generator.save_pretrained(save_dir)
    metrics = trainer.callback_metrics
    result = {
        "dpo": dpo.name,
        "pairs": len(rows),
        "steps": trainer.global_step,
        "final_loss": float(metrics.get("train/dpo_loss", float("nan"))),
        "final_implicit_acc": float(metrics.get("train/implicit_acc", float("nan"))),
        "save_dir": str(save_dir),
        "curve": curve.history if curve is not None else [],
    }
    (save_dir / "training.json").write_text(json.dumps(result, indent=2) + "\n")
    Console().print(
        f"DPO ({dpo.name}, {task.reference} reference): {result['steps']} steps on {len(rows)} "
        f"pairs, final loss {result['final_loss']:.4f}, implicit accuracy "
        f"{result['final_implicit_acc']:.2f}; saved to {save_dir}"
    )
    return result
