"""The reward side of the pipeline: fit_weights, evaluate, the VisionReward scorer, the pairwise
baselines and sweep tables, on a real SynthWorld split with answers in annotate's parquet format."""

from __future__ import annotations

import csv
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import pytorch_lightning as pl
import torch
import yaml
from omegaconf import OmegaConf
from rich.console import Console

import vrexp
from tests.conftest import compose_config, run_cli
from vrexp.backbones import build_backbone
from vrexp.checklist import Checklist
from vrexp.configs import PartitionConfig
from vrexp.configs.tasks import BaselineTraining
from vrexp.data.annotations import AnnotationsError, answer_matrix, read_annotations
from vrexp.data.pairs import PairDataModule, item_records, pair_parts
from vrexp.data.synthworld import ensure_split, read_items
from vrexp.data.synthworld.split import column_levels
from vrexp.modules.ceilings import HIDDEN_UTILITY, ORACLE_ANSWERS
from vrexp.modules.pairwise import PairwiseRewardModule
from vrexp.reports import SweepTable
from vrexp.reports.sweep import write_results
from vrexp.reward import LinearReward
from vrexp.reward.scorer import VisionReward
from vrexp.tasks.evaluate import evaluate
from vrexp.tasks.fit_weights import fit_weights

SPLIT = ["dataset.num_prompts=120", "dataset.renders_per_prompt=4", "logger=none"]


def write_oracle_annotations(split_dir, checklist: Checklist, out_dir, noise: float, seed: int = 0):
    """Annotations in annotate's format whose P(yes) is the oracle answer blurred by noise."""
    items = read_items(split_dir)
    answers = checklist.answers_from_levels(column_levels(items, checklist, "oracle"))
    rng = np.random.default_rng(seed)
    p_yes = np.clip(0.1 + 0.8 * answers + rng.normal(0, noise, answers.shape), 0, 1)
    ids = items.column("item_id").to_numpy()
    n, q = answers.shape
    out_dir.mkdir(parents=True)
    pq.write_table(
        pa.table(
            {
                "item_id": pa.array(np.repeat(ids, q), pa.int64()),
                "media_path": pa.array(["x"] * (n * q)),
                "prompt": pa.array(np.repeat(items.column("prompt").to_pylist(), q).tolist()),
                "question_id": pa.array(
                    np.tile([x.id for x in checklist.questions], n), pa.int32()
                ),
                "question": pa.array(np.tile(checklist.question_texts, n).tolist()),
                "p_yes": pa.array(p_yes.ravel().astype(np.float32)),
            }
        ),
        out_dir / "part-00000.parquet",
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    cfg = compose_config(root, *SPLIT)
    checklist = Checklist.from_config(cfg.dimensions)
    split_dir = ensure_split(OmegaConf.to_object(cfg.dataset), checklist)
    write_oracle_annotations(split_dir, checklist, root / "annotations", noise=0.1)
    # Near-oracle answers make the pairs almost separable, where the unpenalised optimum runs
    # off to infinity; the solver comparison needs a proper optimum.
    write_oracle_annotations(split_dir, checklist, root / "noisy", noise=0.6, seed=1)
    return root, split_dir, checklist


def fitted(world, *overrides, annotations="annotations"):
    root, _, _ = world
    out = root / f"reward{abs(hash((*overrides, annotations)))}"
    cfg = compose_config(
        root,
        *SPLIT,
        "task=fit_weights",
        f"task.annotations={root}/{annotations}",
        f"task.out_dir={out}",
        *overrides,
    )
    return fit_weights(cfg), out


def test_fit_weights_writes_reward_select_checklist_and_plot(world):
    info, out = fitted(world)
    reward = LinearReward.load(out / "weights.json", Checklist.from_yaml(out / "checklist.yaml"))
    assert (reward.weights >= 0).all() and reward.num_features == 17
    assert info["num_zero_weights"] == int((reward.weights == 0).sum())
    # Oracle-like answers explain the hidden utility far above chance on the training pairs.
    assert info["train"]["diff"] > 0.8
    select = yaml.safe_load((out / "select_checklist.yaml").read_text())
    assert select["defaults"] == ["base_checklist", "_self_"]
    kept = Checklist.from_config({k: v for k, v in select.items() if k != "defaults"})
    kept_ids = {q.id for q in kept.questions if q.kind != "presence"}
    assert kept_ids == {
        q.id for q, w in zip(reward.feature_questions, reward.weights, strict=True) if w > 0
    }
    assert (out / "weights.png").stat().st_size > 1000
    saved = json.loads((out / "reward_config.json").read_text())
    assert saved == {"format_version": 1, "vrexp_version": vrexp.__version__, "hard_answers": False}


def test_question_subsets_for_fig5(world):
    random4, _ = fitted(world, "task.questions.num_questions=4")
    top4, _ = fitted(world, "task.questions.num_questions=4", "task.questions.selection=top_weight")
    assert random4["num_features"] == top4["num_features"] == 4
    # The four largest weights of the full fit explain the pairs at least as well as four at random.
    assert top4["train"]["diff"] >= random4["train"]["diff"]


def test_sgd_solver_agrees_with_the_exact_one(world):
    exact, out_exact = fitted(world, annotations="noisy")
    sgd, out_sgd = fitted(
        world, "task.solver=sgd", "task.sgd.lr=0.2", "task.sgd.max_epochs=400", annotations="noisy"
    )
    w_exact = json.loads((out_exact / "weights.json").read_text())["questions"]
    w_sgd = json.loads((out_sgd / "weights.json").read_text())["questions"]
    diff = max(abs(a["weight"] - b["weight"]) for a, b in zip(w_exact, w_sgd, strict=True))
    assert diff < 0.1
    assert abs(exact["train"]["diff"] - sgd["train"]["diff"]) < 0.02


def test_evaluate_reports_tau_star_diff_and_intervals(world):
    root, _, _ = world
    _, reward_dir = fitted(world)
    cfg = compose_config(
        root,
        *SPLIT,
        "task=evaluate",
        f"task.annotations={root}/annotations",
        f"task.reward_dir={reward_dir}",
        f"task.out_dir={root}/eval",
        "task.baselines=[alignment]",
        "task.num_resamples=200",
    )
    summary = evaluate(cfg)
    rows = {r["method"]: r for r in summary["rows"]}
    assert set(rows) == {"VisionReward", "alignment", HIDDEN_UTILITY, ORACLE_ANSWERS}
    vr = rows["VisionReward"]
    assert vr["tau_star_low"] <= vr["tau_star"] <= vr["tau_star_high"]
    assert vr["diff_low"] <= vr["diff"] <= vr["diff_high"]
    # The whole checklist explains the hidden utility better than its alignment questions alone.
    assert vr["diff"] > rows["alignment"]["diff"] and vr["diff"] > 0.75
    assert [d["dimension"] for d in summary["dimensions"]] == Checklist.from_yaml(
        reward_dir / "checklist.yaml"
    ).dimension_names
    for name in ("preference_accuracy.md", "preference_accuracy.csv", "preference_accuracy.png"):
        assert (root / "eval" / name).exists()
    assert json.loads((root / "out" / "results.json").read_text())["rows"][0]["method"] == (
        "VisionReward"
    )


def test_ceilings_are_the_truth_and_the_oracle_answers_under_the_same_fit(world, tmp_path):
    # Annotations that are the oracle's answers once thresholded, and a fit that thresholds:
    # VisionReward then *is* the oracle-answer ceiling, pair for pair.
    root, split_dir, checklist = world
    write_oracle_annotations(split_dir, checklist, root / "exact", noise=0.0)
    _, reward_dir = fitted(world, "task.hard_answers=true", annotations="exact")
    evaluation = [
        "task=evaluate",
        f"task.annotations={root}/exact",
        f"task.reward_dir={reward_dir}",
        f"task.out_dir={tmp_path}/eval",
        "task.baselines=[alignment]",
        "task.num_resamples=100",
    ]
    summary = evaluate(compose_config(root, *SPLIT, *evaluation))
    rows = {r["method"]: r for r in summary["rows"]}
    for metric in ("tau_star", "diff"):
        assert rows["VisionReward"][metric] == rows[ORACLE_ANSWERS][metric]
    paired = {c["minus"]: c for c in summary["comparisons"]}
    assert set(paired) == {"alignment", HIDDEN_UTILITY, ORACLE_ANSWERS}
    oracle = paired[ORACLE_ANSWERS]
    assert (oracle["tau_star"], oracle["tau_star_low"], oracle["tau_star_high"]) == (0, 0, 0)
    # The hidden utility is the labels' own source: only the judges' noise and ties stand
    # between it and the labels.
    assert rows[HIDDEN_UTILITY]["diff"] > 0.9
    truth = paired[HIDDEN_UTILITY]
    assert truth["tau_star_low"] <= truth["tau_star"] <= truth["tau_star_high"]
    assert truth["tau_star"] == pytest.approx(
        rows["VisionReward"]["tau_star"] - rows[HIDDEN_UTILITY]["tau_star"]
    )
    assert all(d["tau_star"] == d["oracle_tau_star"] for d in summary["dimensions"])
    assert (tmp_path / "eval" / "paired_differences.md").is_file()
    # Without ceilings the table holds the methods alone.
    off = evaluate(compose_config(root, *SPLIT, *evaluation, "task.ceilings=false"))
    assert {r["method"] for r in off["rows"]} == {"VisionReward", "alignment"}


def test_the_oracle_gap_falls_on_the_dimension_the_checklist_model_gets_wrong(world, tmp_path):
    # Exact answers except the Alignment questions, answered at random: the whole gap to the
    # oracle-answer ceiling is Alignment's, and the oracle answering any other dimension gains
    # nothing (its thresholded answers are the oracle's already).
    root, split_dir, checklist = world
    write_oracle_annotations(split_dir, checklist, root / "exact_but_alignment", noise=0.0)
    part = root / "exact_but_alignment" / "part-00000.parquet"
    table = pq.read_table(part)
    alignment = [q.id for q in checklist.questions if q.dimension == "Alignment"]
    wrong = np.isin(table.column("question_id").to_numpy(), alignment)
    p_yes = table.column("p_yes").to_numpy().copy()
    p_yes[wrong] = np.random.default_rng(0).random(int(wrong.sum()))
    index = table.schema.get_field_index("p_yes")
    pq.write_table(table.set_column(index, "p_yes", pa.array(p_yes, pa.float32())), part)
    _, reward_dir = fitted(world, "task.hard_answers=true", annotations="exact_but_alignment")
    evaluation = [
        "task=evaluate",
        f"task.annotations={root}/exact_but_alignment",
        f"task.reward_dir={reward_dir}",
        f"task.out_dir={tmp_path}/eval",
        "task.baselines=[]",
        "task.num_resamples=10",
    ]
    summary = evaluate(compose_config(root, *SPLIT, *evaluation))
    rows = {r["method"]: r for r in summary["rows"]}
    gap = {r["dimension"]: r for r in summary["oracle_gap"]}
    assert list(gap) == checklist.dimension_names
    assert rows[ORACLE_ANSWERS]["tau_star"] - rows["VisionReward"]["tau_star"] > 0.05
    assert gap["Alignment"]["tau_star"] == pytest.approx(rows[ORACLE_ANSWERS]["tau_star"])
    assert gap["Alignment"]["recovered"] == pytest.approx(
        rows[ORACLE_ANSWERS]["tau_star"] - rows["VisionReward"]["tau_star"]
    )
    assert gap["Alignment"]["share"] == pytest.approx(1.0)
    for name in checklist.dimension_names[1:]:
        assert gap[name]["recovered"] == 0 and gap[name]["share"] == 0, name
    assert gap["Alignment"]["questions"] == len(alignment)
    assert (tmp_path / "eval" / "oracle_gap.md").is_file()


def test_answer_matrix_names_a_missing_item(world):
    root, _, checklist = world
    table = read_annotations(root / "annotations")
    assert answer_matrix(table, checklist, [0, 1]).shape == (2, len(checklist.questions))
    with pytest.raises(AnnotationsError, match="item 999999"):
        answer_matrix(table, checklist, [999999])


def test_pairs_follow_the_prompt_partition(world):
    _, split_dir, _ = world
    parts = pair_parts(split_dir, PartitionConfig())
    prompts = {int(i): p for i, (_, p) in item_records(split_dir).items()}
    seen = [{prompts[int(i)] for i in parts[p].item_ids} for p in ("train", "val", "test")]
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])
    assert sum(len(parts[p]) for p in parts) == 120 * 6
    with pytest.raises(ValueError, match="num_pairs=100000 but the train part has"):
        parts["train"].sample(100000, seed=0)


@pytest.mark.slow  # 100 epochs of a backbone: about 30 s per head on 2 cores
@pytest.mark.parametrize("head", ["scalar", "question"])
def test_pairwise_baseline_learns_its_training_pairs(world, head, tmp_path):
    _, split_dir, _ = world
    parts = pair_parts(split_dir, PartitionConfig())
    few = parts["train"].without_ties().subset(np.arange(6))
    cfg = compose_config(tmp_path, "backbone=tiny_qwen2_vl")
    pl.seed_everything(0)
    module = PairwiseRewardModule(
        build_backbone(OmegaConf.to_object(cfg.backbone)),
        BaselineTraining(lr=3e-4, warmup_steps=1),
        head=head,
    )
    data = PairDataModule(
        {"train": few, "val": few},
        item_records(split_dir),
        frames=module.backbone.config.frames,
        batch_size=6,
    )
    trainer = pl.Trainer(
        max_epochs=100,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        check_val_every_n_epoch=100,
    )
    before = trainer.validate(module, datamodule=data, verbose=False)[0]["pairwise/val/loss"]
    trainer.fit(module, datamodule=data)
    after = trainer.callback_metrics["pairwise/val/loss"]
    # It learns the pairs it trains on: the Bradley-Terry loss falls from ~log 2 to near 0.
    assert before > 0.6 and after < 0.2, (before, after)
    assert trainer.callback_metrics["pairwise/val/acc"] == 1.0


def test_vision_reward_scores_explains_and_round_trips(world, tmp_path):
    _, split_dir, checklist = world
    cfg = compose_config(tmp_path, "backbone=tiny_qwen2_vl")
    backbone = build_backbone(OmegaConf.to_object(cfg.backbone)).eval()
    weights = np.linspace(0.1, 1.0, sum(q.kind != "presence" for q in checklist.questions))
    scorer = VisionReward(backbone, LinearReward(checklist, weights))
    records = item_records(split_dir)
    paths = [records[i][0] for i in (0, 1, 2)]
    prompts = [records[i][1] for i in (0, 1, 2)]
    scores = scorer.score(paths, prompts)
    torch.testing.assert_close(scores.dimensions.sum(1), scores.total)
    expected = scorer.reward.score(scorer.answer(paths, prompts))
    torch.testing.assert_close(scores.total, expected)
    scorer.save_pretrained(tmp_path / "vr")
    again = VisionReward.from_pretrained(tmp_path / "vr")
    torch.testing.assert_close(again.score(paths, prompts).total, scores.total, atol=1e-5, rtol=0)
    comparison = again.compare(paths[0], paths[1], prompts[0])
    margin = again.score(paths[:2], prompts[:1] * 2).total
    assert comparison.preferred == ("A" if margin[0] > margin[1] else "B")
    assert abs(sum(comparison.dimension_margins.values()) - comparison.margin) < 1e-6
    item = scores.item(0)
    assert len(item["questions"]) == len(checklist.questions)
    table = again.explain(paths[0], prompts[0])
    assert table.row_count == len(checklist.questions) + len(checklist.dimensions)
    console = Console(record=True, width=400)
    console.print(table)
    shown = console.export_text()
    # Questions are shown with the item's prompt filled in, as text (never rich markup).
    assert not any("[[prompt]]" in q["question"] for q in item["questions"])
    assert any(prompts[0] in q["question"] for q in item["questions"])
    assert all(q["question"] in shown for q in item["questions"])
    with pytest.raises(FileNotFoundError, match="not a VisionReward folder"):
        VisionReward.from_pretrained(tmp_path)


def test_sweep_table_gathers_jobs_into_md_csv_and_plot(tmp_path):
    for job, pairs in enumerate((100, 1000)):
        write_results(
            tmp_path / str(job),
            [
                {
                    "method": "VisionReward",
                    "tau_star": 0.5 + job / 10,
                    "tau_star_low": 0.4,
                    "tau_star_high": 0.7,
                    "diff": 0.6,
                    "diff_low": 0.5,
                    "diff_high": 0.7,
                }
            ],
            [f"task.stages.fit_weights.num_pairs={pairs}", "experiment=x"],
        )
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}, "logger": None})
    SweepTable("t11", plot={"kind": "line", "x": "num_pairs"}).on_multirun_end(config)
    md = (tmp_path / "t11.md").read_text()
    assert "| num_pairs | method | tau_star |" in md and "| 1000 | VisionReward | 0.6000 |" in md
    assert (tmp_path / "t11.csv").read_text().count("\n") == 3
    assert (tmp_path / "t11.png").stat().st_size > 1000


@pytest.mark.slow
def test_the_main_job_runs_the_whole_chain(tmp_path):
    result = run_cli(
        f"paths.root_dir={tmp_path}",
        "debug=smoke",  # toy sizes: conf/debug/smoke.yaml
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    stages = ("make_data", "train_checklist", "annotate", "fit_weights", "evaluate")
    for stage in (*stages, "data_efficiency"):
        assert stage in result.stdout
    (run_dir,) = (tmp_path / "logs" / "pipeline" / "runs").iterdir()
    rows = json.loads((run_dir / "results.json").read_text())["rows"]
    assert [r["method"] for r in rows] == [
        "VisionReward",
        "bt_head",
        "generic_question",
        "alignment",
        HIDDEN_UTILITY,
        ORACLE_ANSWERS,
    ]
    assert all(0 <= r["tau_star"] <= 1 and r["tau_star_low"] <= r["tau_star"] for r in rows)
    reward = VisionReward.from_pretrained(run_dir / "reward")
    assert reward.checklist.name == "synthworld_image"
    assert (run_dir / "evaluation" / "preference_accuracy.png").exists()
    # The smoke curve: 10 pairs, then all of them (the main fit's, so the main evaluation's rows).
    with (run_dir / "evaluation" / "data_efficiency.csv").open() as handle:
        curve = list(csv.DictReader(handle))
    assert [(r["budget"], r["method"]) for r in curve] == [
        ("10", "VisionReward"),
        ("10", "bt_head"),
        ("all", "VisionReward"),
        ("all", "bt_head"),
    ]
    assert [float(r["tau_star"]) for r in curve[2:]] == pytest.approx(
        [r["tau_star"] for r in rows[:2]]
    )
    assert (run_dir / "evaluation" / "data_efficiency.png").exists()
    assert list(json.loads((run_dir / "timings.json").read_text())) == [*stages, "data_efficiency"]


@pytest.mark.slow
def test_an_experiment_sweeps_shares_artifacts_and_writes_its_table(tmp_path):
    from vrexp.tracking.offline import read_offline_runs

    result = run_cli(
        f"paths.root_dir={tmp_path}",
        "experiment=table11_regression_size",
        "debug=smoke",
        "task.stages.fit_weights.num_pairs=45,65",  # the command line wins over smoke's sweep
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "reused the checklist model" in result.stdout  # the second job trains nothing
    (sweep,) = (tmp_path / "logs" / "pipeline" / "multiruns").iterdir()
    md = (sweep / "table11_regression_size.md").read_text()
    assert "| 45 |" in md and "| 65 |" in md
    assert (sweep / "table11_regression_size.png").exists()
    runs = read_offline_runs(tmp_path / "logs")
    assert len({r.group for r in runs}) == 1 and len(runs) == 3  # two jobs and the table
