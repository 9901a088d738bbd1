"""Sampling from a generator: seeded candidates per prompt, scored and written resumably.

Candidate k of prompt p is drawn from noise seeded by (seed, p, k), so any part can be regenerated
exactly; the folder format is :mod:`vrexp.data.samples`. Parts are keyed by prompt
(:mod:`vrexp.data.parts`) and the manifest records the generator, the reward, the prompts and
every sampling setting, so a rerun finishes the prompts no part holds, or is refused naming what
changed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
from omegaconf import DictConfig, OmegaConf

from vrexp.configs import GeneratorConfig
from vrexp.configs.choices import VideoFormat
from vrexp.configs.generator_tasks import SampleTaskConfig
from vrexp.data.atomic import atomic_write, claim_output
from vrexp.data.digests import items_digest, module_digest
from vrexp.data.parts import write_parts
from vrexp.data.samples import SCORING_FILE, SamplesError
from vrexp.data.shards import Shard, finish_shard, merge_shards, shard_entry
from vrexp.data.synthworld import Judge
from vrexp.generators.base import GeneratorError, TextToMediaGenerator
from vrexp.generators.loading import build_generator, load_generator
from vrexp.media import save_media
from vrexp.reward.scoring import REWARD_LABELS, reward_manifest

if TYPE_CHECKING:
    from vrexp.reward import RewardScores, VisionReward


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
    video_format: VideoFormat = SampleTaskConfig.video_format,
    shard: Shard | None = None,
    **sampling: Any,
) -> dict[str, Any]:
    """Generate, save and score ``candidates`` per prompt into ``out_dir``; resumable.

    Videos are written as ``video_format``; images are always PNG. Scores and the ``judge``'s
    oracle utility are computed on the generated pixels before they are written, so a lossy
    format changes the files, never the stored numbers. With a ``shard``, only its prompts are
    sampled, into its folder under ``out_dir``, and the shards are merged into ``out_dir`` once
    all of them are complete (:mod:`vrexp.data.shards`)."""
    out_dir = Path(out_dir)
    suffix = VideoFormat(video_format).suffix if generator.video else VideoFormat.apng.suffix
    folder, todo, extra = out_dir, range(len(prompts)), dict(manifest or {})
    if shard is not None:
        folder, todo = shard.folder(out_dir), shard.split(todo, chunk_size)
        extra.update(shard_entry(shard, items_digest(prompts)))

    def wanted() -> dict[str, Any]:  # digests computed under the folder's lock
        return {
            "generator": module_digest(generator),
            "reward": reward_manifest(reward),
            # a shard's prompts by id: its ids are a run of the list's
            "items": items_digest(prompts if shard is None else ([p, prompts[p]] for p in todo)),
            "task.candidates": candidates,
            "task.seed": seed,
            "task.chunk_size": chunk_size,
            "media_suffix": suffix,
            "judge": judge is not None,
            **{f"task.{k}": v for k, v in sorted(sampling.items())},
            **extra,
        }

    labels = SAMPLE_LABELS
    columns = score_columns(reward)

    def build(ids: Sequence[int]) -> tuple[pa.Table, list]:
        rows = [(p, k) for p in ids for k in range(candidates)]
        texts = [prompts[p] for p, _ in rows]
        seeds = [noise_seed(seed, p, k) for p, k in rows]
        media, scores = generate_and_score(generator, reward, texts, seeds, batch_size, **sampling)
        paths = [folder / "media" / f"p{p:05d}_k{k}{suffix}" for p, k in rows]
        for path, item in zip(paths, media, strict=True):
            save_media(path, item)
        table = {
            "prompt_id": pa.array([p for p, _ in rows], pa.int64()),
            "prompt": pa.array(texts, pa.string()),
            "candidate": pa.array([k for _, k in rows], pa.int32()),
            "noise_seed": pa.array(seeds, pa.int64()),
            "media_path": pa.array([str(p.relative_to(folder)) for p in paths], pa.string()),
            "total": pa.array(scores.total.double().numpy()),
            "dimensions": pa.array(scores.dimensions.double().numpy().tolist()),
            "sub_dimensions": pa.array(
                sub_dimension_scores(scores, columns["sub_dimensions"]).tolist()
            ),
            "questions": pa.array(scores.contributions.double().numpy().tolist()),
        }
        if judge is not None:
            table["oracle_utility"] = pa.array(judge(list(media), texts), pa.float64())
        return pa.table(table), []

    with claim_output(
        folder,
        wanted,
        overwrite,
        stale=SAMPLE_STALE,
        what="samples",
        labels=labels,
    ):
        atomic_write(folder / SCORING_FILE, lambda p: p.write_text(json.dumps(columns, indent=2)))
        (folder / "media").mkdir(exist_ok=True)
        write_parts(
            folder,
            todo,
            chunk_size,
            build,
            progress,
            key=int,
            key_column="prompt_id",
            skipped_file=None,
            error=SamplesError,
        )
    result = {"prompts": len(todo), "candidates": candidates, "out_dir": str(out_dir)}
    if shard is not None:
        result["merged"] = finish_shard(
            shard,
            lambda strict: merge_samples(out_dir, overwrite, count=shard.count, strict=strict),
        )
    return result


SAMPLE_STALE = ("part-*.parquet", "media/*")  # what overwrite clears


def merge_samples(
    out_dir: str | Path,
    overwrite: bool = False,
    *,
    count: int | None = None,
    strict: bool = True,
) -> bool:
    """Merge the shards of a samples folder into it, media and score names included
    (:func:`vrexp.data.shards.merge_shards`)."""
    return merge_shards(
        out_dir,
        key_column="prompt_id",
        what="samples",
        stale=SAMPLE_STALE,
        error=SamplesError,
        labels=SAMPLE_LABELS,
        files=("media/*", SCORING_FILE),
        count=count,
        overwrite=overwrite,
        strict=strict,
    )


SAMPLE_LABELS = {**REWARD_LABELS, "generator": "the generator", "items": "the prompts"}


def load_or_build_generator(cfg: DictConfig, folder: str | None) -> TextToMediaGenerator:
    """The generator saved in ``folder``, or else the one ``cfg.generator`` describes."""
    return load_generator(folder) if folder else build_generator(generator_settings(cfg))


def generator_settings(cfg: DictConfig) -> GeneratorConfig:
    """The ``generator`` config as its schema object, checked against the dataset's media."""
    settings = OmegaConf.to_object(cfg.generator)
    media = OmegaConf.select(cfg, "dataset.media")
    made = getattr(settings.media, "value", settings.media)
    if media is not None and made != getattr(media, "value", media):
        raise GeneratorError(
            f"generator {settings.name!r} makes {made}s but dataset "
            f"{cfg.dataset.name!r} holds {media}s; pick a matching pair (e.g. generator=tiny_video "
            "dataset=synthworld_video)"
        )
    return settings
