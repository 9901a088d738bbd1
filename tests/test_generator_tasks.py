"""The generator stages: sample (scored candidates, resume, folder guard), build_pairs' rules and
statistics, train_dpo and eval_generator in process, train_generator on video, and the
optimize_generator chain from the CLI with its shared artifacts."""

from __future__ import annotations

import copy
import functools
import json
import math
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from tests.conftest import compose_config, run_cli
from tests.tiny import TINY
from vrexp.backbones import build_backbone
from vrexp.checklist import Checklist
from vrexp.configs import DPOConfig
from vrexp.configs.choices import VideoFormat
from vrexp.data.atomic import OutputClaimError
from vrexp.data.dpo_pairs import choose_pairs
from vrexp.data.prompts import synthworld_prompts
from vrexp.data.samples import read_samples
from vrexp.data.synthworld import FACTORS, render, sample_plan, synthworld_judge
from vrexp.generators import CogVideoXGenerator, GeneratorError, build_generator, load_generator
from vrexp.generators.sampling import noise_seed, sample_candidates
from vrexp.media import load_media, probe_media, save_media
from vrexp.preference import dominance_statistics
from vrexp.reports.eval_samples import EVAL_SAMPLES_FILE, read_eval_samples
from vrexp.reward import LinearReward
from vrexp.reward.scorer import VisionReward
from vrexp.tasks.build_pairs import build_pairs
from vrexp.tasks.eval_generator import eval_generator
from vrexp.tasks.optimize_generator import layout, pair_columns
from vrexp.tasks.sample import sample
from vrexp.tasks.train_dpo import train_dpo
from vrexp.tasks.train_generator import train_generator

# Toy sizes for the generator (16 x 16 images) and the checklist VLM behind VisionReward.
SMALL = [*TINY, "generator.lora.r=4", "generator.lora.alpha=4"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A VisionReward folder (tiny VLM, random non-negative weights) and a tiny generator folder."""
    root = tmp_path_factory.mktemp("generator_tasks")
    cfg = compose_config(root, *SMALL)
    checklist = Checklist.from_config(cfg.dimensions)
    backbone = build_backbone(OmegaConf.to_object(cfg.backbone)).eval()
    features = [q for q in checklist.questions if q.kind != "presence"]
    weights = np.random.default_rng(0).uniform(0.1, 1.0, len(features))
    reward = VisionReward(backbone, LinearReward(checklist, weights))
    reward.save_pretrained(root / "reward")
    generator = build_generator(OmegaConf.to_object(cfg.generator)).eval()
    generator.save_pretrained(root / "generator")
    return SimpleNamespace(
        root=root, cfg=cfg, checklist=checklist, reward=reward, generator=generator
    )


def candidate_keys(table: pa.Table) -> list[tuple[int, int]]:
    return list(
        zip(
            table.column("prompt_id").to_pylist(),
            table.column("candidate").to_pylist(),
            strict=True,
        )
    )


def column(table: pa.Table, name: str) -> np.ndarray:
    return np.asarray(table.column(name).to_pylist(), dtype=np.float64)


# ------------------------------------------------------------------------------ sample
class SynthWorldRenderer:
    """A stand-in video generator: candidate seed s is a rendered SynthWorld plan."""

    video = True

    def generate(self, prompts, seeds, **sampling):
        plans = [sample_plan(np.random.default_rng(s), "video", 0.4, 0.5) for s in seeds]
        return np.stack([render(plan, seed=s) for plan, s in zip(plans, seeds, strict=True)])


def test_sample_writes_mp4_videos_and_judges_the_generated_pixels(tmp_path):
    cfg = compose_config(tmp_path, "dataset=synthworld_video", *SMALL)
    checklist = Checklist.from_config(cfg.dimensions)
    backbone = build_backbone(OmegaConf.to_object(cfg.backbone)).eval()
    features = [q for q in checklist.questions if q.kind != "presence"]
    reward = VisionReward(backbone, LinearReward(checklist, np.linspace(0.1, 1.0, len(features))))
    judge = synthworld_judge(OmegaConf.to_object(cfg.dataset))
    prompts = synthworld_prompts(2, 5, "video")
    tables = {}
    for video_format in VideoFormat:
        out = tmp_path / str(video_format)
        sample_candidates(
            SynthWorldRenderer(),
            reward,
            prompts,
            out,
            candidates=2,
            judge=judge,
            video_format=video_format,
        )
        tables[video_format], _ = read_samples(out)
    paths = tables[VideoFormat.mp4].column("media_path").to_pylist()
    assert all(p.endswith(".mp4") for p in paths)
    assert all(
        p.endswith(".png") for p in tables[VideoFormat.apng].column("media_path").to_pylist()
    )
    info = probe_media(tmp_path / "mp4" / paths[0])
    assert (info.codec, info.num_frames, info.fps, info.width) == ("h264", 8, 8.0, 64)
    # Scores and the oracle come from the generated pixels, not from the lossy files.
    generated = SynthWorldRenderer().generate(
        None, tables[VideoFormat.mp4].column("noise_seed").to_pylist()
    )
    texts = tables[VideoFormat.mp4].column("prompt").to_pylist()
    for table in tables.values():
        np.testing.assert_array_equal(
            column(table, "oracle_utility"), judge(list(generated), texts)
        )
        np.testing.assert_array_equal(
            column(table, "total"), column(tables[VideoFormat.apng], "total")
        )
    decoded = load_media(tmp_path / "mp4" / paths[0])
    assert decoded.shape == generated[0].shape and np.any(decoded != generated[0])
    np.testing.assert_array_equal(
        load_media(tmp_path / "apng" / tables[VideoFormat.apng].column("media_path")[0].as_py()),
        generated[0],
    )


def test_sample_candidates_scores_resumes_and_guards_its_folder(world, tmp_path, monkeypatch):
    prompts = synthworld_prompts(5, 7, "image")
    judge = synthworld_judge(OmegaConf.to_object(world.cfg.dataset))
    out = tmp_path / "samples"
    run = functools.partial(
        sample_candidates,
        world.generator,
        world.reward,
        candidates=3,
        seed=11,
        batch_size=4,
        chunk_size=2,
        judge=judge,
        manifest={"generator": "a"},
    )
    run(prompts, out)
    table, names = read_samples(out)
    parts = sorted(p.name for p in out.glob("part-*.parquet"))
    assert parts == [f"part-{p:08d}.parquet" for p in (0, 2, 4)]  # 5 prompts, 2 per part
    rows = [(p, k) for p in range(5) for k in range(3)]
    assert candidate_keys(table) == rows
    assert table.column("prompt").to_pylist() == [prompts[p] for p, _ in rows]
    assert table.column("noise_seed").to_pylist() == [noise_seed(11, p, k) for p, k in rows]
    assert names["dimensions"] == world.checklist.dimension_names
    total, dims = column(table, "total"), column(table, "dimensions")
    subs, questions = column(table, "sub_dimensions"), column(table, "questions")
    assert dims.shape == (15, len(names["dimensions"]))
    assert subs.shape == (15, len(names["sub_dimensions"]))
    assert questions.shape == (15, len(names["questions"]))
    assert all(n.split("/")[0] in names["dimensions"] for n in names["sub_dimensions"])
    np.testing.assert_allclose(dims.sum(1), total, rtol=0, atol=1e-6)
    np.testing.assert_allclose(subs.sum(1), total, rtol=0, atol=1e-6)
    np.testing.assert_allclose(questions.sum(1), total, rtol=0, atol=1e-6)
    assert np.ptp(total) > 0
    # The stored files are the candidates: regenerable from their seed, and scored as stored.
    media = [load_media(p) for p in table.column("media_path").to_pylist()]
    alone = world.generator.generate([prompts[1]], [noise_seed(11, 1, 1)])[0]
    # (batched with other candidates when sampled: allow a rounding step of the uint8 output)
    assert np.abs(alone.astype(int) - media[4].astype(int)).max() <= 1
    texts = table.column("prompt").to_pylist()
    np.testing.assert_allclose(world.reward.score(media, texts).total, total, rtol=0, atol=1e-5)
    np.testing.assert_allclose(column(table, "oracle_utility"), judge(media, texts))

    # A run killed before its last part resumes there and regenerates nothing else.
    (out / "part-00000004.parquet").unlink()
    calls = []
    generate = world.generator.generate
    monkeypatch.setattr(
        world.generator, "generate", lambda p, s, **kw: calls.append(len(p)) or generate(p, s, **kw)
    )
    run(prompts, out)
    assert calls == [3]
    again, _ = read_samples(out)
    assert again.equals(table)
    assert candidate_keys(again) == rows  # every candidate once, in order

    # Another generator's samples never mix in: refused, or cleared with overwrite.
    with pytest.raises(OutputClaimError, match='generator changed from "a" to "b"'):
        run(prompts, out, manifest={"generator": "b"})
    assert read_samples(out)[0].equals(table)
    run(prompts[:2], out, manifest={"generator": "b"}, overwrite=True)
    fresh, _ = read_samples(out)
    assert fresh.num_rows == 6 and fresh.column("prompt_id").to_pylist() == [0, 0, 0, 1, 1, 1]
    assert sorted(p.name for p in out.glob("part-*.parquet")) == ["part-00000000.parquet"]
    assert len(list((out / "media").iterdir())) == 6
    assert json.loads((out / "manifest.json").read_text())["generator"] == "b"


# ------------------------------------------------------------------------------ build_pairs
SUB_OF_QUESTION = [0, 1, 2, 2]  # 4 questions in 3 sub-dimensions
DIM_OF_SUB = [0, 0, 1]  # ... in 2 dimensions


def samples_table(questions, utility=None, prompt_ids=None) -> pa.Table:
    """A samples table as ``read_samples`` returns it, from [P, K, 4] question contributions."""
    q = np.asarray(questions, dtype=np.float64)
    p, k, _ = q.shape
    subs = q @ np.eye(3)[SUB_OF_QUESTION]
    dims = subs @ np.eye(2)[DIM_OF_SUB]
    ids = list(range(p)) if prompt_ids is None else prompt_ids
    columns = {
        "prompt_id": pa.array(np.repeat(ids, k), pa.int64()),
        "prompt": pa.array([f"prompt {i}" for i in ids for _ in range(k)]),
        "candidate": pa.array(np.tile(np.arange(k), p), pa.int32()),
        "media_path": pa.array([f"p{i}_k{c}.png" for i in ids for c in range(k)]),
        "total": pa.array(q.sum(-1).ravel()),
        "dimensions": pa.array(dims.reshape(p * k, -1).tolist()),
        "sub_dimensions": pa.array(subs.reshape(p * k, -1).tolist()),
        "questions": pa.array(q.reshape(p * k, -1).tolist()),
    }
    if utility is not None:
        columns["oracle_utility"] = pa.array(np.asarray(utility, np.float64).ravel())
    return pa.table(columns)


def dpo(rule="mpo", granularity="dimension", threshold=0.0, num_pairs=None, seed=0):
    return DPOConfig(
        name=f"{rule}_{granularity}",
        rule=rule,
        granularity=granularity,
        threshold=threshold,
        num_pairs=num_pairs,
        seed=seed,
    )


def triples(pairs: pa.Table, prompt_ids=(10, 11)) -> list[tuple[int, int, int]]:
    rank = {p: i for i, p in enumerate(prompt_ids)}
    return [
        (rank[p], w, lo)
        for p, w, lo in zip(
            pairs.column("prompt_id").to_pylist(),
            pairs.column("winner").to_pylist(),
            pairs.column("loser").to_pylist(),
            strict=True,
        )
    ]


# Prompt 10: candidate 0 wins on total (3 vs 2) but is worse than candidate 1 on dimension 1.
# Prompt 11: candidate 0 dominates candidate 1 on dimensions and sub-dimensions, not on question 2.
HAND_MADE = [
    [[2, 1, 0, 0], [0.5, 0.5, 0.5, 0.5], [0, 0, 0, 0]],
    [[1.5, 0.5, 0.2, 0.8], [0.5, 0.5, 0.5, 0.5], [0, 0, 0, 0]],
]
UTILITY = [[1, 2, 0], [3, 1, 0]]


@pytest.mark.parametrize(
    ("rule", "granularity", "threshold", "expected"),
    [
        (
            "total",
            "dimension",
            0.0,
            [(0, 0, 1), (0, 0, 2), (0, 1, 2), (1, 0, 1), (1, 0, 2), (1, 1, 2)],
        ),
        ("total", "dimension", 1.5, [(0, 0, 2), (0, 1, 2), (1, 0, 2), (1, 1, 2)]),
        ("mpo", "dimension", 0.0, [(0, 0, 2), (0, 1, 2), (1, 0, 1), (1, 0, 2), (1, 1, 2)]),
        ("mpo", "sub_dimension", 0.0, [(0, 0, 2), (0, 1, 2), (1, 0, 1), (1, 0, 2), (1, 1, 2)]),
        ("mpo", "question", 0.0, [(0, 0, 2), (0, 1, 2), (1, 0, 2), (1, 1, 2)]),
    ],
)
def test_choose_pairs_picks_the_documented_pairs(rule, granularity, threshold, expected):
    table = samples_table(HAND_MADE, UTILITY, prompt_ids=[10, 11])
    pairs, stats = choose_pairs(table, dpo(rule, granularity, threshold))
    assert triples(pairs) == expected
    # Only the total rule keeps prompt 10's (0, 1): higher total, worse on dimension 1.
    assert pairs.column("dominating").to_pylist() == [t != (0, 0, 1) for t in expected]
    assert pairs.column("winner_path").to_pylist() == [
        f"p{10 + p}_k{w}.png" for p, w, _ in expected
    ]
    assert pairs.column("loser_path").to_pylist() == [
        f"p{10 + p}_k{lo}.png" for p, _, lo in expected
    ]
    totals = np.array(HAND_MADE).sum(-1)
    gaps = [totals[p, w] - totals[p, lo] for p, w, lo in expected]
    np.testing.assert_allclose(pairs.column("total_gap").to_numpy(), gaps)
    agrees = [UTILITY[p][w] > UTILITY[p][lo] for p, w, lo in expected]
    assert pairs.column("oracle_agrees").to_pylist() == agrees
    assert stats["oracle_agreement"] == pytest.approx(np.mean(agrees))
    assert stats["pairs"] == stats["qualifying_pairs"] == len(expected)
    assert stats["pairs_dominating"] == sum(t != (0, 0, 1) for t in expected)
    assert stats["prompts"] == 2 and stats["candidates"] == 3 and stats["prompts_with_pairs"] == 2
    # Table 5's count is always the dimension-level total rule at the same threshold.
    dims = torch.tensor(HAND_MADE).reshape(2, 3, 2, 2).sum(-1)
    assert stats["total_rule"] == dominance_statistics(dims, threshold)
    assert (stats["total_rule"]["total_rule_pairs"], stats["total_rule"]["non_dominating"]) == (
        (6, 1) if threshold == 0 else (4, 0)
    )


def test_the_pair_budget_is_a_seeded_subset():
    rng = np.random.default_rng(3)
    table = samples_table(rng.random((3, 6, 4)))
    everything, stats = choose_pairs(table, dpo("total"))
    assert stats["qualifying_pairs"] == len(everything) == 3 * 15  # no ties among random totals
    chosen = {}
    for seed in (0, 1):
        budget, budget_stats = choose_pairs(table, dpo("total", num_pairs=7, seed=seed))
        assert budget.equals(choose_pairs(table, dpo("total", num_pairs=7, seed=seed))[0])
        assert budget.num_rows == budget_stats["pairs"] == 7
        assert budget_stats["qualifying_pairs"] == 45
        chosen[seed] = triples(budget, prompt_ids=(0, 1, 2))
        assert chosen[seed] == sorted(chosen[seed])
        assert set(chosen[seed]) <= set(triples(everything, prompt_ids=(0, 1, 2)))
    assert chosen[0] != chosen[1]


def brute_force(scores: np.ndarray, rule: str, threshold: float) -> list[tuple[int, int, int]]:
    rows = []
    for p, candidates in enumerate(scores):
        for w, win in enumerate(candidates):
            for lo, lose in enumerate(candidates):
                gap = win.sum() - lose.sum()
                if gap > 0 and gap >= threshold and (rule == "total" or (win >= lose).all()):
                    rows.append((p, w, lo))
    return rows


@settings(max_examples=80, deadline=None)
@given(
    data=st.data(),
    shape=st.tuples(st.integers(1, 3), st.integers(2, 4)),
    rule=st.sampled_from(["total", "mpo"]),
    granularity=st.sampled_from(["dimension", "sub_dimension", "question"]),
    threshold=st.sampled_from([0.0, 1.0, 2.5]),
    num_pairs=st.sampled_from([None, 1, 3]),
    seed=st.integers(0, 5),
)
def test_choose_pairs_agrees_with_a_brute_force_loop(
    data, shape, rule, granularity, threshold, num_pairs, seed
):
    # Small integers: ties in totals and in single scores, the edge cases of both rules.
    questions = data.draw(
        st.lists(
            st.sampled_from([0.0, 1.0, 2.0]),
            min_size=shape[0] * shape[1] * 4,
            max_size=shape[0] * shape[1] * 4,
        )
    )
    questions = np.reshape(questions, (*shape, 4))
    utility = data.draw(
        st.lists(st.integers(0, 2), min_size=shape[0] * shape[1], max_size=shape[0] * shape[1])
    )
    table = samples_table(questions, utility)
    config = dpo(rule, granularity, threshold, num_pairs, seed)
    pairs, stats = choose_pairs(table, config)
    levels = {
        "dimension": questions @ np.eye(3)[SUB_OF_QUESTION] @ np.eye(2)[DIM_OF_SUB],
        "sub_dimension": questions @ np.eye(3)[SUB_OF_QUESTION],
        "question": questions,
    }
    expected = brute_force(levels[granularity], rule, threshold)
    kept = triples(pairs, prompt_ids=range(shape[0]))
    if num_pairs is None or num_pairs >= len(expected):
        assert kept == expected
    else:
        assert len(kept) == num_pairs and kept == sorted(kept) and set(kept) <= set(expected)
    assert pairs.equals(choose_pairs(table, config)[0])
    dims = levels["dimension"]
    assert pairs.column("dominating").to_pylist() == [
        bool((dims[p, w] >= dims[p, lo]).all()) for p, w, lo in kept
    ]
    assert (pairs.column("total_gap").to_numpy() >= max(threshold, 1e-9)).all()
    assert stats["qualifying_pairs"] == len(expected) and stats["pairs"] == len(kept)
    assert stats["pairs_dominating"] + stats["pairs_non_dominating"] == len(kept)
    assert stats["total_rule"] == pytest.approx(
        dominance_statistics(torch.from_numpy(dims), threshold), nan_ok=True
    )
    utility = np.reshape(utility, shape)
    agreement = [utility[p, w] > utility[p, lo] for p, w, lo in kept]
    assert stats["oracle_agreement"] == pytest.approx(
        np.mean(agreement) if kept else math.nan, nan_ok=True
    )


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    shape=st.tuples(st.integers(1, 3), st.integers(2, 6)),
    threshold=st.sampled_from([0.0, 1.0]),
    epsilon=st.sampled_from([0.5, 1.0, 3.0]),
)
def test_the_pair_columns_count_every_candidate_pair(data, shape, threshold, epsilon):
    # The K sweep's columns (experiments/mpo_k_sweep.yaml): every rule at one threshold, no budget.
    size = shape[0] * shape[1] * 4
    questions = data.draw(st.lists(st.sampled_from([0.0, 1.0, 2.0]), min_size=size, max_size=size))
    table = samples_table(np.reshape(questions, (*shape, 4)))
    columns = {}
    for rule, tolerance in [("total", 0.0), ("mpo", 0.0), ("mpo_epsilon", epsilon)]:
        config = DPOConfig(
            name=rule,
            rule="total" if rule == "total" else "mpo",
            threshold=threshold,
            epsilon=tolerance,
            num_pairs=None,
        )
        columns[rule] = pair_columns(choose_pairs(table, config)[1])
    prompts, k = shape
    ratios = {
        "qualifying_fraction": ("qualifying_pairs", "candidate_pairs"),
        "dominating_fraction": ("pairs_dominating", "pairs"),
        "total_rule_dominating_fraction": ("total_rule_dominating", "total_rule_pairs"),
    }
    for rule, c in columns.items():
        assert (c["candidates"], c["threshold"]) == (k, threshold)
        assert c["candidate_pairs"] == prompts * k * (k - 1) // 2
        assert c["pairs"] == c["qualifying_pairs"] <= c["candidate_pairs"], rule
        assert c["prompts_with_pairs"] <= prompts and (c["pairs"] > 0) == (
            c["prompts_with_pairs"] > 0
        )
        assert c["pairs_dominating"] + c["pairs_non_dominating"] == c["pairs"]
        assert c["total_rule_dominating"] + c["total_rule_non_dominating"] == c["total_rule_pairs"]
        for fraction, (part, whole) in ratios.items():
            if c[whole] == 0:
                assert c[fraction] is None, (rule, fraction)  # an empty cell, not NaN
            else:
                assert c[fraction] == pytest.approx(c[part] / c[whole]) and 0 <= c[fraction] <= 1
    total, mpo, tolerant = columns["total"], columns["mpo"], columns["mpo_epsilon"]
    # Exact MPO keeps exactly the total rule's dominating pairs; epsilon-MPO lies in between.
    assert mpo["pairs"] == total["total_rule_dominating"] == mpo["pairs_dominating"]
    assert mpo["pairs_non_dominating"] == 0 and mpo["dominating_fraction"] in (None, 1.0)
    assert mpo["pairs"] <= tolerant["pairs"] <= total["pairs"] == total["total_rule_pairs"]
    assert total["dominating_fraction"] == total["total_rule_dominating_fraction"]
    assert tolerant["epsilon"] == epsilon and mpo["epsilon"] == 0


# ------------------------------------------------------------------------------ stages in process
def test_sample_pairs_dpo_and_eval_stages(world, tmp_path):
    def stage(*overrides):
        return compose_config(tmp_path, *SMALL, *overrides)

    reward_dir, base_dir = world.root / "reward", world.root / "generator"
    sample(
        stage(
            "task=sample",
            f"task.generator_dir={base_dir}",
            f"task.reward_dir={reward_dir}",
            "task.prompts.num_prompts=4",
            "task.candidates=3",
            "task.chunk_size=2",
            f"task.out_dir={tmp_path / 'samples'}",
        )
    )
    table, _ = read_samples(tmp_path / "samples")
    assert table.num_rows == 12 and "oracle_utility" in table.column_names
    manifest = json.loads((tmp_path / "samples" / "manifest.json").read_text())
    assert manifest["generator"]["path"] == str(base_dir.resolve())
    assert manifest["task.candidates"] == 3 and manifest["items"]["count"] == 4

    pair_overrides = [f"task.samples={tmp_path / 'samples'}", f"task.out_dir={tmp_path / 'pairs'}"]
    stats = build_pairs(
        stage(
            "task=build_pairs", *pair_overrides, "dpo=total", "dpo.threshold=0", "dpo.num_pairs=4"
        )
    )
    assert json.loads((tmp_path / "pairs" / "statistics.json").read_text()) == stats
    assert stats["dpo"] == "total" and stats["pairs"] == 4 < stats["qualifying_pairs"]
    assert stats["total_rule"]["total_rule_pairs"] == stats["qualifying_pairs"]

    tuned_dir = tmp_path / "tuned"
    result = train_dpo(
        stage(
            "task=train_dpo",
            f"task.generator_dir={base_dir}",
            f"task.pairs={tmp_path / 'pairs'}",
            f"task.reward_dir={reward_dir}",
            "task.max_steps=2",
            "task.batch_size=2",
            "task.curve_every_n_steps=1",
            "task.curve_prompts.num_prompts=2",
            f"task.save_dir={tuned_dir}",
            "dpo=total",
        )
    )
    assert result["steps"] == 2 and result["pairs"] == 4 and math.isfinite(result["final_loss"])
    assert json.loads((tuned_dir / "training.json").read_text()) == result
    assert [point["step"] for point in result["curve"]] == [0, 1, 2]
    dimension_keys = {f"reward/{n}" for n in world.checklist.dimension_names}
    for point in result["curve"]:
        assert dimension_keys | {"reward/total", "oracle/utility"} <= set(point)
        assert point["reward/total"] == pytest.approx(sum(point[k] for k in dimension_keys))
    # The merged LoRA changed the attention projections it targets and nothing else.
    base, tuned = load_generator(base_dir), load_generator(tuned_dir)
    assert not tuned.has_lora
    base_weights = dict(base.named_parameters())
    moved = {n for n, p in tuned.named_parameters() if not torch.equal(p, base_weights[n])}
    targets = (".to_q.", ".to_k.", ".to_v.", ".to_out.0.")
    assert moved and all(n.startswith("denoiser.") and any(t in n for t in targets) for n in moved)

    rows = eval_generator(
        stage(
            "task=eval_generator",
            f"task.base_dir={base_dir}",
            f"+task.generator_dirs.tuned={tuned_dir}",
            f"+task.generator_dirs.same={base_dir}",
            f"task.reward_dir={reward_dir}",
            "task.prompts.num_prompts=3",
            "task.samples_per_prompt=2",
            f"task.out_dir={tmp_path / 'eval'}",
        )
    )["rows"]
    assert json.loads((tmp_path / "eval" / "eval_generator.json").read_text()) == rows
    by_name = {row["generator"]: row for row in rows}
    assert list(by_name) == ["base", "tuned", "same"]
    for row in rows:
        assert dimension_keys <= set(row)
        assert row["reward"] == pytest.approx(sum(row[k] for k in dimension_keys))
        assert 0 <= row["dims_regressed"] <= len(dimension_keys)
    tuned_row = by_name["tuned"]
    assert (
        0
        <= tuned_row["oracle_win_low"]
        <= tuned_row["oracle_win_rate"]
        <= tuned_row["oracle_win_high"]
        <= 1
    )
    assert 0 <= tuned_row["reward_win_rate"] <= 1
    # The base against itself: same prompts and noise, so every sample ties.
    same = by_name["same"]
    assert same["reward"] == by_name["base"]["reward"] and same["dims_regressed"] == 0
    assert same["reward_win_rate"] == same["oracle_win_rate"] == 0.5
    assert (same["oracle_gain"], same["oracle_gain_low"], same["oracle_gain_high"]) == (0, 0, 0)
    assert same["oracle_up"] == same["oracle_down"] == "" and same["oracle_factors_down"] == 0

    # By the truth: each factor's mean quality, and the tuned generator's moves against the base.
    factors = [f.key for f in FACTORS["image"]]
    for row in rows:
        assert all(0 <= row[f"oracle/{f}"] <= 1 for f in factors)
    base_row = by_name["base"]
    for f in factors:
        assert tuned_row[f"oracle_delta/{f}"] == pytest.approx(
            tuned_row[f"oracle/{f}"] - base_row[f"oracle/{f}"]
        )
    up = [f for f in tuned_row["oracle_up"].split(", ") if f]
    down = [f for f in tuned_row["oracle_down"].split(", ") if f]
    assert all(tuned_row[f"oracle_delta/{f}"] > 0 for f in up)
    assert all(tuned_row[f"oracle_delta/{f}"] < 0 for f in down)
    assert tuned_row["oracle_factors_down"] == len(down)
    assert tuned_row["oracle_gain"] == pytest.approx(
        tuned_row["oracle_utility"] - base_row["oracle_utility"]
    )
    assert tuned_row["oracle_gain_low"] <= tuned_row["oracle_gain"] <= tuned_row["oracle_gain_high"]

    # Every judged sample is kept, on the evaluation's rows: 3 prompts x 2 noise seeds.
    sample_rows, judged = read_eval_samples(tmp_path / "eval" / EVAL_SAMPLES_FILE)
    assert list(judged) == ["base", "tuned", "same"]
    assert sample_rows["prompt_index"] == [0, 0, 1, 1, 2, 2]
    assert sample_rows["sample"] == [0, 1] * 3 and len(set(sample_rows["seed"])) == 6
    for name, samples in judged.items():
        assert samples.total.mean() == pytest.approx(by_name[name]["reward"])
        assert samples.utility.mean() == pytest.approx(by_name[name]["oracle_utility"])
        assert set(samples.qualities) == set(factors)
    np.testing.assert_array_equal(judged["same"].utility, judged["base"].utility)

    # Two tuned generators meet head to head; "same" is the base, so it mirrors "tuned".
    (match,) = json.loads((tmp_path / "eval" / "head_to_head.json").read_text())
    assert (match["generator"], match["against"]) == ("same", "tuned")
    assert match["oracle_win_rate"] == pytest.approx(1 - tuned_row["oracle_win_rate"])
    assert match["oracle_gain"] == pytest.approx(-tuned_row["oracle_gain"])
    assert match["oracle_gain_low"] == pytest.approx(-tuned_row["oracle_gain_high"])
    assert match["oracle_up"] == tuned_row["oracle_down"]


# ------------------------------------------------------------------------------ train_generator
VIDEO = [
    "task=train_generator",
    "generator=tiny_video",
    "dataset=synthworld_video",
    "dataset.num_prompts=4",
    "dataset.image_size=32",
    "dataset.num_frames=6",
    "generator.image_size=32",
    "generator.num_frames=6",
    "generator.num_inference_steps=2",
    "generator.tiny.num_layers=1",
    "generator.tiny.num_heads=2",
    "generator.tiny.head_dim=8",
    "generator.tiny.text_hidden_size=32",
    "generator.tiny.text_layers=1",
    "generator.tiny.vocab_size=300",
    "task.max_steps=3",  # one epoch of the 6 training videos, so validation runs once
    "task.batch_size=2",
    "task.val_fraction=0.25",
    "task.num_preview=1",
    "logger=none",
]


def test_train_generator_pretrains_a_tiny_video_generator(tmp_path):
    result = train_generator(compose_config(tmp_path, *VIDEO, f"task.save_dir={tmp_path / 'gen'}"))
    assert result["steps"] == 3 and math.isfinite(result["train_loss"])
    assert math.isfinite(result["val_loss"])
    assert json.loads((tmp_path / "gen" / "training.json").read_text()) == result
    assert load_media(tmp_path / "gen" / "preview.png").shape == (32, 32, 3)

    # ... and Diffusion-DPO trains its LoRA on video pairs, the base staying the reference.
    generator = load_generator(tmp_path / "gen")
    prompts = ["one red circle on a sky background", "two blue squares on a mint background"]
    videos = generator.generate([p for p in prompts for _ in range(2)], [0, 1, 2, 3])
    rows = []
    for i, prompt in enumerate(prompts):
        paths = [tmp_path / "pairs" / f"{i}_{k}.png" for k in range(2)]
        for path, video in zip(paths, videos[2 * i : 2 * i + 2], strict=True):
            save_media(path, video)
        rows.append({"prompt": prompt, "winner_path": str(paths[0]), "loser_path": str(paths[1])})
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "pairs" / "pairs.parquet")
    before = {k: v.clone() for k, v in generator.denoiser.state_dict().items()}
    result = train_dpo(
        compose_config(
            tmp_path,
            *[o for o in VIDEO if not o.startswith("task.")],
            "task=train_dpo",
            f"task.generator_dir={tmp_path / 'gen'}",
            f"task.pairs={tmp_path / 'pairs'}",
            f"task.save_dir={tmp_path / 'dpo'}",
            "task.max_steps=2",
            "task.batch_size=2",
        )
    )
    assert result["steps"] == 2 and result["pairs"] == 2 and math.isfinite(result["final_loss"])
    tuned = load_generator(tmp_path / "dpo").denoiser.state_dict()
    changed = {k for k in before if not torch.equal(before[k], tuned[k])}
    assert changed and all(any(t in k for t in ("to_q", "to_k", "to_v", "to_out")) for k in changed)
    generator = load_generator(tmp_path / "gen")
    assert isinstance(generator, CogVideoXGenerator) and generator.video
    media = generator.generate(["one red circle on a sky background"], [0])
    assert media.shape == (1, 6, 32, 32, 3) and media.dtype == np.uint8


def test_train_generator_refuses_a_generator_for_other_media(tmp_path):
    cfg = compose_config(
        tmp_path, "task=train_generator", "generator=tiny_sd", "dataset=synthworld_video"
    )
    with pytest.raises(GeneratorError, match="tiny_sd") as err:
        train_generator(cfg)
    assert "synthworld_video" in str(err.value)
    assert not (tmp_path / "data").exists()  # refused before rendering anything


# ------------------------------------------------------------------------------ the CLI chain
CHAIN = [
    "task=optimize_generator",
    "debug=smoke",  # toy sizes: conf/debug/smoke.yaml and conf/debug/tasks/smoke/
    "logger=csv",
    "task.stages.sample.chunk_size=4",  # 6 prompts in parts of 4: the reuse check counts parts
    "dpo.num_pairs=10",
]


def test_each_k_samples_into_its_own_shared_folder(tmp_path):
    # A samples folder refuses a resume with other settings, so a sweep over K (or any sample
    # setting) needs a folder per value; a sweep over dpo, one for all its jobs.
    composed = compose_config(tmp_path, "task=optimize_generator")

    def folder(cfg=composed, **sample: Any) -> Path:
        cfg = copy.deepcopy(cfg)
        for key, value in sample.items():
            OmegaConf.update(cfg, f"task.stages.sample.{key}", value)
        layout(cfg)
        return Path(cfg.task.stages.sample.out_dir)

    base = folder()
    k4, k16 = folder(candidates=4), folder(candidates=16)
    assert base.parent == k4.parent == k16.parent and base.parent.name == "tiny_sd"
    assert (base.name[:3], k4.name[:3], k16.name[:4]) == ("k8-", "k4-", "k16-")
    assert len({base, k4, k16}) == 3
    # Where and in what batches it samples is not what it samples.
    assert folder() == base == folder(batch_size=3) == folder(shard="1/2", overwrite=True)
    assert folder(compose_config(tmp_path, "task=optimize_generator", "dpo=total")) == base
    others = [{"prompts.num_prompts": 7}, {"seed": 1}, {"num_inference_steps": 5}]
    others += [{"chunk_size": 4}, {"video_format": "mp4"}]
    assert len({base, *(folder(**o) for o in others)}) == 1 + len(others)
    assert folder(out_dir=str(tmp_path / "mine")) == tmp_path / "mine"
    video = folder(
        compose_config(
            tmp_path, "task=optimize_generator", "dataset=synthworld_video", "generator=tiny_video"
        )
    )
    assert video.parent.name == "tiny_video" and video.name.startswith("k8-")


@pytest.mark.slow
def test_optimize_generator_from_the_cli_shares_its_artifacts(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # see one_thread
    first = run_cli(f"paths.root_dir={tmp_path}", *CHAIN, "hydra.run.dir=" + str(tmp_path / "run1"))
    assert first.returncode == 0, first.stderr[-3000:]
    out = tmp_path / "run1"
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [r["generator"] for r in rows] == ["original", "mpo"]
    tuned = rows[1]
    assert tuned["pairs"] == 10 and tuned["dpo_steps"] == 4
    assert tuned["pairs_dominating"] + tuned["pairs_non_dominating"] == 10
    assert tuned["total_rule_pairs"] >= tuned["pairs"] and 0 <= tuned["oracle_agreement"] <= 1
    assert 0 <= tuned["oracle_win_rate"] <= 1
    statistics = json.loads((out / "pairs" / "statistics.json").read_text())
    assert statistics["pairs"] == 10 and statistics["rule"] == "mpo"
    # The reward curve (paper Fig. 11) is kept with the tuned generator.
    curve = json.loads((out / "generator" / "training.json").read_text())["curve"]
    assert [p["step"] for p in curve] == [0, 2, 4]
    names = {k for k in rows[0] if k.startswith("reward/")}
    assert len(names) == 5 and all(
        names | {"reward/total", "oracle/utility"} <= set(p) for p in curve
    )
    evaluation = json.loads((out / "eval" / "eval_generator.json").read_text())
    assert 0 <= evaluation[1]["oracle_win_rate"] <= 1
    (artifacts,) = (tmp_path / "artifacts" / "synthworld_image").glob("*/tiny_qwen2_vl")
    base_json = artifacts / "generators" / "tiny_sd" / "training.json"
    (samples,) = (artifacts / "samples" / "tiny_sd").glob("k6-*")  # K = 6 at smoke size
    stamps = {p: p.stat().st_mtime_ns for p in [base_json, *samples.glob("part-*.parquet")]}
    assert len(stamps) == 3  # 6 prompts in parts of 4

    # Another dpo variant, reported as its reward curve: the base generator and the samples
    # are reused as they are; only pairs, DPO and evaluation run again.
    second = run_cli(
        f"paths.root_dir={tmp_path}",
        *CHAIN,
        "dpo=total",
        "task.report=curve",
        "hydra.run.dir=" + str(tmp_path / "run2"),
    )
    assert second.returncode == 0, second.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert sorted(samples.glob("part-*.parquet")) == sorted(p for p in stamps if p != base_json)
    statistics = json.loads((tmp_path / "run2" / "pairs" / "statistics.json").read_text())
    assert statistics["rule"] == "total" and statistics["pairs"] == 10
    rows = json.loads((tmp_path / "run2" / "results.json").read_text())["rows"]
    assert [(r["generator"], r["step"]) for r in rows] == [("total", 0), ("total", 2), ("total", 4)]
    assert all(names <= set(r) for r in rows)
    # Same base, curve prompts and noise: the curve starts where the first run's did.
    assert rows[0]["reward/total"] == curve[0]["reward/total"]

    # A pretrained base (task.base_dir) replaces the train_generator stage: samples of its own.
    base = tmp_path / "pretrained_base"
    shutil.copytree(artifacts / "generators" / "tiny_sd", base)
    third = run_cli(
        f"paths.root_dir={tmp_path}",
        *CHAIN,
        f"task.base_dir={base}",
        f"task.stages.sample.out_dir={tmp_path / 'base_samples'}",
        "task.report=pairs",
        "hydra.run.dir=" + str(tmp_path / "run3"),
    )
    assert third.returncode == 0, third.stderr[-3000:]
    timings = json.loads((tmp_path / "run3" / "timings.json").read_text())
    assert "train_generator" not in timings and "train_dpo" not in timings
    manifest = json.loads((tmp_path / "base_samples" / "manifest.json").read_text())
    assert manifest["generator"]["path"] == str(base.resolve())
    rows = json.loads((tmp_path / "run3" / "results.json").read_text())["rows"]
    assert len(rows) == 1 and rows[0]["generator"] == "mpo" and rows[0]["pairs"] == 10
    assert rows[0]["pairs_dominating"] == 10 and rows[0]["pairs_non_dominating"] == 0
