"""Stage ``sample``: K candidates per prompt from a generator, each scored with VisionReward.

Writes a samples folder (:mod:`vrexp.data.samples`): candidate k of prompt p is drawn from noise
seeded by (seed, p, k), parts are written atomically, and a killed run resumes with the prompts
no part holds; a rerun with another generator, reward, prompt list or setting is refused.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger
from rich.progress import Progress

from vrexp.data.prompts import prompts_from
from vrexp.data.samples import read_samples
from vrexp.data.synthworld import synthworld_judge
from vrexp.generators.sampling import load_or_build_generator, sample_candidates
from vrexp.reward import VisionReward
from vrexp.tracking import stage_logger

log = logging.getLogger(__name__)


def sample(cfg: DictConfig, logger: Logger | None = None) -> dict[str, Any]:
    task = OmegaConf.to_object(cfg.task)
    out_dir = Path(task.out_dir or Path(cfg.paths.output_dir) / "samples")
    generator = load_or_build_generator(cfg, task.generator_dir)
    reward = VisionReward.from_pretrained(task.reward_dir)
    prompts = prompts_from(task.prompts, "video" if generator.video else "image")
    judge = synthworld_judge(OmegaConf.to_object(cfg.dataset))
    # the judge's oracle utility is a column of the parts: its world's weighting shapes them
    manifest = {
        "judge": OmegaConf.to_container(cfg.dataset.utility, resolve=True) if judge else None
    }
    sampling = {
        k: getattr(task, k)
        for k in ("num_inference_steps", "guidance_scale")
        if getattr(task, k) is not None
    }
    with stage_logger(cfg, logger) as logger, Progress(transient=True) as bar:
        job = bar.add_task("sampling and scoring", total=len(prompts))
        result = sample_candidates(
            generator,
            reward,
            prompts,
            out_dir,
            candidates=task.candidates,
            seed=task.seed,
            batch_size=task.batch_size,
            chunk_size=task.chunk_size,
            judge=judge,
            manifest=manifest,
            overwrite=task.overwrite,
            progress=lambda n: bar.advance(job, n),
            video_format=task.video_format,
            **sampling,
        )
        table, _ = read_samples(out_dir)
        totals = table.column("total").to_numpy()
        if logger is not None:
            logger.log_metrics({"sample/mean_reward": float(totals.mean())})
    log.info(
        "%d candidates (%d prompts x %d) scored; mean reward %+.3f (sd %.3f); written to %s",
        table.num_rows,
        len(prompts),
        task.candidates,
        totals.mean(),
        totals.std(),
        out_dir,
    )
    return result
