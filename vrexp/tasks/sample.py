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

from vrexp.backbones.provenance import resolve_device
from vrexp.data.prompts import prompts_from
from vrexp.data.samples import read_samples
from vrexp.data.shards import (
    MERGE,
    Shard,
    merge_note,
    parse_shard,
    progress_label,
    require_shared_out_dir,
    shard_device,
)
from vrexp.data.synthworld import synthworld_judge
from vrexp.generators.sampling import load_or_build_generator, merge_samples, sample_candidates
from vrexp.reward import VisionReward
from vrexp.tracking import stage_logger

log = logging.getLogger(__name__)


def sample(cfg: DictConfig, logger: Logger | None = None) -> dict[str, Any]:
    task = OmegaConf.to_object(cfg.task)
    shard = parse_shard(task.shard)
    if shard is not None:
        require_shared_out_dir(task.out_dir, shard)
    out_dir = Path(task.out_dir or Path(cfg.paths.output_dir) / "samples")
    if shard == MERGE:
        merge_samples(out_dir, task.overwrite)
        return _summary(out_dir, logger, task.candidates, stage_cfg=cfg)
    generator = load_or_build_generator(cfg, task.generator_dir)
    reward = VisionReward.from_pretrained(task.reward_dir)
    if isinstance(shard, Shard) and shard.source == "torchrun":  # a GPU per rank
        device = shard_device(resolve_device(None), shard)
        generator, reward = generator.to(device), reward.to(device)
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
    reports = shard is None or shard.reports
    mine = len(prompts) if shard is None else shard.size(len(prompts), task.chunk_size)
    with Progress(transient=True, disable=not reports) as bar:
        job = bar.add_task(progress_label("sampling and scoring", shard), total=mine)
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
            shard=shard,
            **sampling,
        )
    if isinstance(shard, Shard) and not (result["merged"] and reports):
        (log.info if reports else log.debug)(
            "%d prompts x %d candidates sampled into %s (shard %s%s)",
            mine,
            task.candidates,
            shard.folder(out_dir),
            shard.label,
            merge_note(result, out_dir),
        )
        return result
    return {**result, **_summary(out_dir, logger, task.candidates, stage_cfg=cfg)}


def _summary(
    out_dir: Path, logger: Logger | None, candidates: int, *, stage_cfg: DictConfig
) -> dict[str, Any]:
    """Log the mean reward of a (whole) samples folder."""
    table, _ = read_samples(out_dir)
    totals = table.column("total").to_numpy()
    with stage_logger(stage_cfg, logger) as logger:
        if logger is not None:
            logger.log_metrics({"sample/mean_reward": float(totals.mean())})
    log.info(
        "%d candidates (%d prompts x %d) scored; mean reward %+.3f (sd %.3f); written to %s",
        table.num_rows,
        table.num_rows // candidates,
        candidates,
        totals.mean(),
        totals.std(),
        out_dir,
    )
    return {"prompts": table.num_rows // candidates, "out_dir": str(out_dir)}
