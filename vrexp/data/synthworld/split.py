"""Writing and reading a SynthWorld split: media files plus parquet metadata.

Layout of a split folder::

    manifest.json          the dataset config (chunk size included) and checklist the split was
                           made with
    checklist.yaml         the checklist whose questions order ``oracle_answers``
    media/000123.png       one PNG per image, or one animated PNG per video
    items/part-00000012.parquet  item_id, prompt, media_path, plan.<factor>, oracle.<factor>,
                              oracle.count and oracle.color (what alignment was judged on),
                              oracle_answers (one per checklist question), utility; the renders
                              of a chunk of prompts, named by its first prompt
    pairs.parquet          pair_id, prompt_id, item_a, item_b, delta, preference (+1 A, -1 B, 0 tie),
                           label ("A", "B" or "tie")
    summary.json           level histograms, tie fraction, oracle agreement

Items are written in parts of ``chunk_size`` prompts, each atomically and keyed by prompt
(:mod:`vrexp.data.parts`), so an interrupted run renders only the prompts no part holds; a rerun
with another config is refused naming what changed. Every random draw is keyed by (seed, prompt,
render), so the same config gives byte-identical files.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vrexp.checklist import Checklist, ChecklistError
from vrexp.data.artifacts import shared_folder
from vrexp.data.atomic import atomic_write, claim_output
from vrexp.data.digests import config_digest, items_digest
from vrexp.data.parts import read_parts, write_parts
from vrexp.data.synthworld.grammar import PromptSpec, sample_spec
from vrexp.data.synthworld.oracle import observe
from vrexp.data.synthworld.preference import check_weights, label_pairs, utility
from vrexp.data.synthworld.render import render
from vrexp.data.synthworld.world import ABSENT, FACTORS, MAX_COUNT, Plan, sample_levels
from vrexp.media import save_media

FORMAT_VERSION = 3  # 2: parts named by their first prompt; 3: oracle.count and oracle.color
_PAIRS_STREAM = 7  # extra SeedSequence word that separates the pair-noise stream from rendering


class SplitError(RuntimeError):
    """A split folder that does not match its config, or a checklist the world cannot answer."""


def check_checklist(checklist: Checklist, media: str) -> None:
    """Every sub-dimension must name a factor of this world, with matching levels and masking."""
    factors = {f.key: f for f in FACTORS[media]}
    if checklist.media != media:
        raise ChecklistError(
            f"checklist {checklist.name!r} is for {checklist.media}, the dataset is {media}"
        )
    for sub in checklist.sub_dimensions:
        where = f"checklist {checklist.name!r}, sub-dimension {sub.dimension}/{sub.name}"
        factor = factors.get(sub.key or "")
        if factor is None:
            raise ChecklistError(
                f"{where}: key {sub.key!r} is not a SynthWorld {media} factor "
                f"(known: {sorted(factors)}); the pixel oracle cannot answer it"
            )
        if factor.num_levels != sub.num_levels:
            raise ChecklistError(
                f"{where}: factor {factor.key!r} has {factor.num_levels} levels, the sub-dimension "
                f"lists {sub.num_levels} options"
            )
        if factor.maskable != (sub.presence is not None):
            raise ChecklistError(
                f"{where}: factor {factor.key!r} {'can' if factor.maskable else 'cannot'} be "
                "absent, so the sub-dimension must "
                f"{'have' if factor.maskable else 'not have'} a presence question"
            )


def checklist_levels(checklist: Checklist, levels: list[dict[str, int]]) -> np.ndarray:
    """[N, S] levels in the checklist's sub-dimension order from per-item factor levels."""
    keys = [sub.key for sub in checklist.sub_dimensions]
    return np.array([[lv[k] for k in keys] for lv in levels], dtype=np.int64).reshape(
        len(levels), len(keys)
    )


def column_levels(items: pa.Table, checklist: Checklist, source: str) -> np.ndarray:
    """[N, S] levels of the checklist's sub-dimensions from the ``plan.*`` or ``oracle.*`` columns."""
    return np.stack(
        [
            items.column(f"{source}.{sub.key}").to_numpy().astype(np.int64)
            for sub in checklist.sub_dimensions
        ],
        axis=1,
    )


def _write_json(path: Path, payload: Any) -> None:
    atomic_write(path, lambda p: p.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n"))


def _manifest(config: Any, checklist: Checklist) -> dict[str, Any]:
    dataset = dataclasses.asdict(config)
    dataset["media"] = str(getattr(config.media, "value", config.media))
    dataset.pop("out_dir", None)
    return {
        "format_version": FORMAT_VERSION,
        "dataset": dataset,
        "checklist": config_digest(checklist.to_config(), name=checklist.name),
        "items": items_digest(range(config.num_prompts)),  # the prompts; read_items counts them
    }


# What overwrite deletes from a split folder made with another config.
_STALE = ("items/part-*.parquet", "media/*", "pairs.parquet", "summary.json", "checklist.yaml")


def prompt_spec(config: Any, media: str, prompt_id: int) -> PromptSpec:
    """The prompt of ``prompt_id`` in the split ``config`` describes, without rendering it."""
    rng = np.random.default_rng([config.seed, prompt_id])
    face = bool(rng.random() < config.face_rate)
    return sample_spec(rng, MAX_COUNT[media], face)


def _render_part(
    config: Any, media: str, checklist: Checklist, prompt_ids: Sequence[int], out_dir: Path
) -> pa.Table:
    keys = [f.key for f in FACTORS[media]]
    rows: dict[str, list] = {
        k: [] for k in ("item_id", "prompt_id", "render", "prompt", "media", "media_path")
    }
    plans, observations = [], []
    for prompt_id in prompt_ids:
        spec = prompt_spec(config, media, prompt_id)
        face = spec.face
        for r in range(config.renders_per_prompt):
            item_id = prompt_id * config.renders_per_prompt + r
            levels = sample_levels(
                np.random.default_rng([config.seed, prompt_id, r]),
                media,
                face,
                config.level_concentration,
            )
            pixels = render(
                Plan(spec, levels),
                config.image_size,
                config.num_frames,
                seed=[config.seed, prompt_id, r, 1],
            )
            rel = f"media/{item_id:06d}.png"
            save_media(out_dir / rel, pixels)
            for key, value in (
                ("item_id", item_id),
                ("prompt_id", prompt_id),
                ("render", r),
                ("prompt", spec.text),
                ("media", media),
                ("media_path", rel),
            ):
                rows[key].append(value)
            plans.append(levels)
            observations.append(observe(pixels, spec))
    weights = dict(config.utility.weights)
    columns: dict[str, pa.Array] = {
        "item_id": pa.array(rows["item_id"], pa.int64()),
        "prompt_id": pa.array(rows["prompt_id"], pa.int64()),
        "render": pa.array(rows["render"], pa.int16()),
        "prompt": pa.array(rows["prompt"], pa.string()),
        "media": pa.array(rows["media"], pa.string()),
        "media_path": pa.array(rows["media_path"], pa.string()),
    }
    for key in keys:
        columns[f"plan.{key}"] = pa.array([p[key] for p in plans], pa.int8())
    oracles = [o.levels for o in observations]
    for key in keys:
        columns[f"oracle.{key}"] = pa.array([o[key] for o in oracles], pa.int8())
    columns["oracle.count"] = pa.array([o.count for o in observations], pa.int8())
    columns["oracle.color"] = pa.array([o.color for o in observations], pa.string())
    answers = checklist.answers_from_levels(checklist_levels(checklist, oracles))
    columns["oracle_answers"] = pa.array(list(answers), pa.list_(pa.float32()))
    columns["utility"] = pa.array(
        utility(plans, media, weights, config.utility.interaction), pa.float64()
    )
    return pa.table(columns)


def make_split(
    config: Any,
    checklist: Checklist,
    *,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Render the split described by ``config`` (a ``SynthWorldConfig``) into ``config.out_dir``.

    Returns the summary (also written to ``summary.json``). ``progress(done, total)`` counts
    prompts. A folder made with another config (chunk size included) is refused naming what
    changed, or cleared when ``overwrite``.
    """
    media = str(getattr(config.media, "value", config.media))
    check_checklist(checklist, media)
    check_weights(config.utility.weights, media)
    out_dir = Path(config.out_dir)
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, config.num_prompts)

    with claim_output(
        out_dir,
        _manifest(config, checklist),
        overwrite,
        stale=_STALE,
        what="a SynthWorld split",
        folder_key="dataset.out_dir",
        labels={"checklist": "the checklist"},
        error=SplitError,
    ):
        checklist.to_yaml(out_dir / "checklist.yaml")
        write_parts(
            out_dir / "items",
            range(config.num_prompts),
            config.chunk_size,
            lambda ids: (_render_part(config, media, checklist, ids, out_dir), []),
            advance,
            key=int,
            key_column="prompt_id",
            skipped_file=None,
            error=SplitError,
        )
        items = read_items(out_dir)
        pairs = _pairs(items, config)
        atomic_write(out_dir / "pairs.parquet", lambda p: pq.write_table(pairs, p))
        summary = summarize(items, pairs, checklist)
        _write_json(out_dir / "summary.json", summary)
    return summary


def ensure_split(config: Any, checklist: Checklist) -> Path:
    """The split folder of ``config``, rendered first if it is not complete."""
    if getattr(config, "kind", "synthworld") != "synthworld":
        raise SplitError(
            f"dataset {str(config.name)!r} is a {config.kind} dataset, not a SynthWorld split, so this "
            "stage cannot read it (benchmark snapshots are read by vrexp.data.benchmarks, "
            "docs/benchmarks.md §5)"
        )
    split_dir = Path(config.out_dir)
    if not (split_dir / "summary.json").exists():
        # Parallel jobs of a sweep need the same split: one renders it, the others wait for it.
        with shared_folder(split_dir, "SynthWorld split"):
            if not (split_dir / "summary.json").exists():
                make_split(config, checklist)
    return split_dir


def preference_split(config: Any, checklist: Checklist) -> Path:
    """:func:`ensure_split` for a stage that needs human preference pairs, which only SynthWorld
    splits have; any other dataset is an error naming it."""
    if getattr(config, "kind", None) != "synthworld":
        raise SplitError(
            f"this stage needs human preference pairs; dataset {config.name!r} has none (use a "
            "SynthWorld dataset)"
        )
    return ensure_split(config, checklist)


def _pairs(items: pa.Table, config: Any) -> pa.Table:
    prompt_ids = items.column("prompt_id").to_numpy()
    item_ids = items.column("item_id").to_numpy()
    k = config.renders_per_prompt
    a, b = np.triu_indices(k, 1)
    first = np.flatnonzero(np.r_[True, prompt_ids[1:] != prompt_ids[:-1]])
    rows = (
        np.concatenate([np.stack([f + a, f + b], axis=1) for f in first])
        if len(first)
        else np.zeros((0, 2), int)
    )
    rng = np.random.default_rng([config.seed, _PAIRS_STREAM])
    delta, preference = label_pairs(
        items.column("utility").to_numpy(), rows, config.utility.noise, config.tie_fraction, rng
    )
    return pa.table(
        {
            "pair_id": pa.array(np.arange(len(rows)), pa.int64()),
            "prompt_id": pa.array(prompt_ids[rows[:, 0]], pa.int64()),
            "item_a": pa.array(item_ids[rows[:, 0]], pa.int64()),
            "item_b": pa.array(item_ids[rows[:, 1]], pa.int64()),
            "delta": pa.array(delta, pa.float64()),
            "preference": pa.array(preference, pa.int8()),
            "label": pa.array(np.array(["B", "tie", "A"])[preference + 1], pa.string()),
        }
    )


def read_items(split_dir: str | Path) -> pa.Table:
    """All item rows of a split, in item order; a split that holds a prompt twice, or fewer
    prompts than its config (an interrupted make_data), is an error."""
    split_dir = Path(split_dir)
    table = read_parts(
        split_dir, "prompt_id", ("item_id",), error=SplitError, parts_dir=split_dir / "items"
    )
    if table is None:
        raise SplitError(f"{split_dir} has no item parts; run `python run.py task=make_data` first")
    return table


def read_pairs(split_dir: str | Path) -> pa.Table:
    path = Path(split_dir) / "pairs.parquet"
    if not path.exists():
        raise SplitError(f"{path} not found; the split is incomplete (re-run task=make_data)")
    return pq.read_table(path)


def oracle_agreement(items: pa.Table, checklist: Checklist) -> np.ndarray:
    """[Q] fraction of items whose oracle answer equals the answer implied by the rendered plan."""
    truth = checklist.answers_from_levels(column_levels(items, checklist, "plan"))
    oracle = checklist.answers_from_levels(column_levels(items, checklist, "oracle"))
    return (truth == oracle).mean(axis=0)


def summarize(items: pa.Table, pairs: pa.Table, checklist: Checklist) -> dict[str, Any]:
    histograms = {}
    for sub in checklist.sub_dimensions:
        levels = items.column(f"plan.{sub.key}").to_numpy()
        counts = {name: int((levels == i).sum()) for i, name in enumerate(sub.options)}
        if sub.presence is not None:
            counts[sub.absent or "absent"] = int((levels == ABSENT).sum())
        histograms[f"{sub.dimension}/{sub.name}"] = counts
    agreement = oracle_agreement(items, checklist)
    dims = checklist.question_dimension()
    preference = pairs.column("preference").to_numpy()
    return {
        "num_items": items.num_rows,
        "num_prompts": len(set(items.column("prompt_id").to_pylist())),
        "num_pairs": pairs.num_rows,
        "tie_fraction": float((preference == 0).mean()) if len(preference) else 0.0,
        "a_preferred_fraction": float((preference > 0).mean()) if len(preference) else 0.0,
        "level_histograms": histograms,
        "oracle_agreement": {
            "min_question": float(agreement.min()),
            "mean": float(agreement.mean()),
            "per_dimension": {
                name: float(agreement[dims == d].mean())
                for d, name in enumerate(checklist.dimension_names)
            },
            "per_question": {
                q.text: float(a) for q, a in zip(checklist.questions, agreement, strict=True)
            },
        },
    }
