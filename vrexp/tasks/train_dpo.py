"""Stage ``train_dpo``: Diffusion-DPO of a generator on the pairs of ``build_pairs``.

LoRA adapters on the denoiser are trained and the reference is the base with them disabled (the
default), or the whole denoiser is trained against a frozen copy (``task.reference=copy``). With
``task.reward_dir`` set, periodic samples are scored (the reward curve of the paper's Fig. 11).
The tuned generator is saved with the adapters merged, as a plain generator folder, whole at the
end; a killed run rerun into the same ``save_dir`` resumes (:mod:`vrexp.modules.resume`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger

from vrexp.atomic import atomic_dir
from vrexp.configs.choices import Reference
from vrexp.data.dpo_pairs import read_pairs_rows
from vrexp.data.generation import GenerationDataModule, PreferencePairDataset
from vrexp.data.prompts import prompts_from
from vrexp.data.synthworld import synthworld_judge
from vrexp.generators.sampling import load_or_build_generator, noise_seed
from vrexp.modules import DPOModule
from vrexp.modules.resume import claim_checkpoints, config_manifest, files_listing, rows_sha256
from vrexp.modules.reward_curve import RewardCurve
from vrexp.modules.trainer import build_trainer
from vrexp.ranks import is_rank_zero
from vrexp.reward import VisionReward
from vrexp.tracking import stage_logger

log = logging.getLogger(__name__)


def train_dpo(cfg: DictConfig, logger: Logger | None = None) -> dict[str, Any]:
    task, dpo = OmegaConf.to_object(cfg.task), OmegaConf.to_object(cfg.dpo)
    pl.seed_everything(cfg.seed, workers=True)
    rows = read_pairs_rows(task.pairs)
    save_dir = Path(task.save_dir or Path(cfg.paths.output_dir) / "generator")
    inputs = {
        "pairs_sha256": rows_sha256(rows),
        "generator_files": files_listing(task.generator_dir),
        "reward_files": files_listing(task.reward_dir),
    }
    with claim_checkpoints(
        cfg,
        save_dir,
        config_manifest(cfg, ("task", "dpo", "dataset", "generator", "trainer"), **inputs),
        overwrite=task.overwrite,
        what="DPO",
    ) as checkpoints:
        generator = load_or_build_generator(cfg, task.generator_dir)
        if task.reference == Reference.lora:
            lora = cfg.generator.lora
            generator.add_lora(lora.r, lora.alpha, lora.target_modules, lora.dropout)
        module = DPOModule(generator, task, dpo, reference=task.reference)
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
                judge=synthworld_judge(OmegaConf.to_object(cfg.dataset)),
            )
            callbacks.append(curve)
        with stage_logger(cfg, logger) as logger:
            trainer = build_trainer(
                cfg,
                task,
                logger,
                callbacks=callbacks,
                checkpoints=checkpoints,
                shard_layers=generator.shard_layers,
                limit_val_batches=0,
                num_sanity_val_steps=0,
            )
            checkpoints.fit(trainer, module, datamodule=data)
        generator.merge_lora()
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
        # eval_generator reads this folder: it appears whole, once training is done.
        if is_rank_zero():  # under DDP every rank holds the same weights
            with atomic_dir(save_dir) as tmp:
                generator.save_pretrained(tmp)
                (tmp / "training.json").write_text(json.dumps(result, indent=2) + "\n")
        checkpoints.finish()
        log.info(
            "DPO (%s, %s reference): %d steps on %d pairs, final loss %.4f, implicit accuracy %.2f; "
            "saved to %s",
            dpo.name,
            task.reference,
            result["steps"],
            len(rows),
            result["final_loss"],
            result["final_implicit_acc"],
            save_dir,
        )
        return result
