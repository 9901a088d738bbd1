"""Stage ``sample``: K candidates per prompt from a generator, each scored with VisionReward.

Output folder::

    manifest.json           generator, reward, prompts and sampling settings the parts belong to
    scoring.json            names of the dimension / sub-dimension / question score columns
    media/p00012_k3.png     candidate 3 of prompt 12
    part-00000.parquet      prompt_id, prompt, candidate, noise_seed, media_path, total,
                            dimensions, sub_dimensions, questions (lists), oracle_utility

Candidate k of prompt p is drawn from noise seeded by (seed, p, k), so a part can be regenerated
exactly. Parts are written atomically; a killed run resumes after the last complete part.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger
from rich.console import Console
from rich.progress import Progress

from vrexp.data.atomic import atomic_write, claim_output
from vrexp.data.media import save_media
from vrexp.data.prompts import prompts_from
from vrexp.data.synthworld.preference import oracle_utility
from vrexp.generators import TextToMediaGenerator, build_generator, load_generator
from vrexp.reward import VisionReward
from vrexp.reward.scorer import RewardScores
from vrexp.tasks.train_generator import generator_config
from vrexp.tracking import stage_logger

Judge = Callable[[Sequence[np.ndarray], Sequence[str]], np.ndarray]


def noise_seed(seed: int, prompt_id: int, candidate: int) -> int:
    return int(np.random.SeedSequence([seed, prompt_id, candidate]).generate_state(1)[0])


def score_columns(reward: VisionReward) -> dict[str, list[str]]:
    """Names of the score vectors stored per candidate, at each granularity."""
    features = reward.reward.feature_questions
    return {
        "dimensions": list(reward.checklist.dimension_names),
        "sub_dimensions": list(dict.fromkeys(f"{q.dimension}/{q.sub_dimension}" for q in features)),
        "questions": [q.text for q in features],
    }


def sub_dimension_scores(scores: RewardScores, names: list[str]) -> np.ndarray:
    """[N, S] sums of question contributions per sub-dimension (they add up to the total)."""
    member = np.zeros((len(scores.feature_questions), len(names)))
    for f, q in enumerate(scores.feature_questions):
        member[f, names.index(f"{q.dimension}/{q.sub_dimension}")] = 1.0
    return scores.contributions.double().numpy() @ member


def generate_and_score(
    generator: TextToMediaGenerator,
    reward: VisionReward,
    prompts: Sequence[str],
    seeds: Sequence[int],
    batch_size: int,
    **sampling: Any,
) -> tuple[np.ndarray, RewardScores]:
    media = np.concatenate(
        [
            generator.generate(prompts[i : i + batch_size], seeds[i : i + batch_size], **sampling)
            for i in range(0, len(prompts), batch_size)
        ]
    )
    return media, reward.score(list(media), list(prompts))


def sample_candidates(
    generator: TextToMediaGenerator,
    reward: VisionReward,
    prompts: Sequence[str],
    out_dir: str | Path,
    *,
    candidates: int = 8,
    seed: int = 0,
    batch_size: int = 64,
    chunk_size: int = 32,
    judge: Judge | None = None,
    manifest: dict[str, Any] | None = None,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
    **sampling: Any,
) -> dict[str, Any]:
    """Generate, save and score ``candidates`` per prompt into ``out_dir``; resumable."""
    out_dir = Path(out_dir)
    claim_output(
        out_dir,
        manifest or {},
        overwrite,
        stale=("part-*.parquet", "media/*"),
        what="samples of another generator, reward or prompt list",
    )
    columns = score_columns(reward)
    atomic_write(out_dir / "scoring.json", lambda p: p.write_text(json.dumps(columns, indent=2)))
    (out_dir / "media").mkdir(exist_ok=True)
    suffix = ".png"
    for start in range(0, len(prompts), chunk_size):
        part = out_dir / f"part-{start // chunk_size:05d}.parquet"
        ids = range(start, min(start + chunk_size, len(prompts)))
        if not part.exists():
            rows = [(p, k) for p in ids for k in range(candidates)]
            texts = [prompts[p] for p, _ in rows]
            seeds = [noise_seed(seed, p, k) for p, k in rows]
            media, scores = generate_and_score(
                generator, reward, texts, seeds, batch_size, **sampling
            )
            paths = [out_dir / "media" / f"p{p:05d}_k{k}{suffix}" for p, k in rows]
            for path, item in zip(paths, media, strict=True):
                save_media(path, item)
            table = {
                "prompt_id": pa.array([p for p, _ in rows], pa.int64()),
                "prompt": pa.array(texts, pa.string()),
                "candidate": pa.array([k for _, k in rows], pa.int32()),
                "noise_seed": pa.array(seeds, pa.int64()),
                "media_path": pa.array([str(p.relative_to(out_dir)) for p in paths], pa.string()),
                "total": pa.array(scores.total.double().numpy()),
                "dimensions": pa.array(scores.dimensions.double().numpy().tolist()),
                "sub_dimensions": pa.array(
                    sub_dimension_scores(scores, columns["sub_dimensions"]).tolist()
                ),
                "questions": pa.array(scores.contributions.double().numpy().tolist()),
            }
            if judge is not None:
                table["oracle_utility"] = pa.array(judge(list(media), texts), pa.float64())
            written = pa.table(table)
            atomic_write(part, lambda f, t=written: pq.write_table(t, f))
        if progress is not None:
            progress(len(ids))
    return {"prompts": len(prompts), "candidates": candidates, "out_dir": str(out_dir)}


def read_samples(folder: str | Path) -> tuple[pa.Table, dict[str, list[str]]]:
    """All candidate rows of a sample folder (sorted by prompt, candidate) and the score names."""
    folder = Path(folder)
    parts = sorted(folder.glob("part-*.parquet"))
    if not parts or not (folder / "scoring.json").is_file():
        raise FileNotFoundError(
            f"{folder} holds no scored samples; run `python run.py task=sample` first"
        )
    table = pa.concat_tables([pq.read_table(p) for p in parts])
    table = table.sort_by([("prompt_id", "ascending"), ("candidate", "ascending")])
    paths = [str(folder / p) for p in table.column("media_path").to_pylist()]
    table = table.set_column(
        table.schema.get_field_index("media_path"), "media_path", pa.array(paths)
    )
    return table, json.loads((folder / "scoring.json").read_text())


def synthworld_judge(cfg: DictConfig) -> Judge | None:
    """The SynthWorld oracle utility for the dataset's world (None for a user's media folder)."""
    if OmegaConf.select(cfg, "dataset.kind") != "synthworld":
        return None
    utility = cfg.dataset.utility
    kind = str(getattr(cfg.dataset.media, "value", cfg.dataset.media))
    weights = dict(utility.weights)
    return lambda media, prompts: oracle_utility(media, prompts, kind, weights, utility.interaction)


def load_or_build_generator(cfg: DictConfig, folder: str | None) -> TextToMediaGenerator:
    return load_generator(folder) if folder else build_generator(generator_config(cfg))


def sample(cfg: DictConfig, logger: Logger | None = None) -> dict[str, Any]:
    task = cfg.task
    generator = load_or_build_generator(cfg, task.generator_dir)
    reward = VisionReward.from_pretrained(task.reward_dir)
    media_kind = "video" if generator.video else "image"
    prompts = prompts_from(task.prompts, media_kind)
    manifest = {
        "generator": str(Path(task.generator_dir).resolve())
        if task.generator_dir
        else cfg.generator.name,
        "reward_dir": str(Path(task.reward_dir).resolve()),
        "prompts": OmegaConf.to_container(task.prompts, resolve=True),
        "candidates": task.candidates,
        "seed": task.seed,
        "num_inference_steps": task.num_inference_steps,
        "guidance_scale": task.guidance_scale,
    }
    sampling = {
        k: task[k] for k in ("num_inference_steps", "guidance_scale") if task[k] is not None
    }
    console = Console()
    with stage_logger(cfg, logger) as logger, Progress(console=console, transient=True) as bar:
        job = bar.add_task("sampling and scoring", total=len(prompts))
        result = sample_candidates(
            generator,
            reward,
            prompts,
            task.out_dir,
            candidates=task.candidates,
            seed=task.seed,
            batch_size=task.batch_size,
            chunk_size=task.chunk_size,
            judge=synthworld_judge(cfg),
            manifest=manifest,
            overwrite=task.overwrite,
            progress=lambda n: bar.advance(job, n),
            **sampling,
        )
        table, _ = read_samples(task.out_dir)
        totals = table.column("total").to_numpy()
        if logger is not None:
            logger.log_metrics({"sample/mean_reward": float(totals.mean())})
    console.print(
        f"{table.num_rows} candidates ({len(prompts)} prompts x {task.candidates}) scored; "
        f"mean reward {totals.mean():+.3f} (sd {totals.std():.3f}); written to {task.out_dir}"
    )
    return result
