"""The main job's data-efficiency curve (vrexp/modules/data_efficiency.py, the pipeline's last
step): rows per budget, the main budget's rows taken from the main evaluation, budgets checked
against the split, finished budgets reused on a rerun, and the table and plot files. On a
smoke-sized SynthWorld split with near-oracle annotations, a real fit, a real evaluation and a
real bt_head training of a few steps per budget."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import vrexp.modules.data_efficiency as curve_module
from tests.conftest import compose_config
from tests.test_reward_pipeline import write_oracle_annotations
from vrexp.checklist import Checklist
from vrexp.configs.views import stage_view
from vrexp.data.pairs import PairBudgetError
from vrexp.modules.data_efficiency import data_efficiency_curve, resolve_budgets
from vrexp.tasks.evaluate import evaluate
from vrexp.tasks.fit_weights import fit_weights
from vrexp.tasks.pipeline import check_budgets, data_efficiency, layout

pytestmark = pytest.mark.usefixtures("one_thread")

SMOKE = [
    "debug=smoke",
    "logger=none",
    "task.stages.evaluate.baselines=[bt_head]",
    "task.stages.evaluate.ceilings=false",
]
BT = "bt_head"


def main_job(root, *overrides):
    cfg = compose_config(root, *SMOKE, *overrides)
    layout(cfg.task, cfg.paths.output_dir)
    return cfg


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, one_thread):
    """A main job's config, its train-pair count and its evaluation (the reward fitted on
    near-oracle annotations in place of a trained checklist model)."""
    root = tmp_path_factory.mktemp("curve")
    cfg = main_job(root)
    split_dir = check_budgets(cfg)
    checklist = Checklist.from_config(cfg.dimensions)
    annotations = Path(cfg.task.stages.annotate.out_dir)  # where layout put them
    write_oracle_annotations(split_dir, checklist, annotations, noise=0.3)
    fit = stage_view(cfg, "fit_weights")
    fit.task.model_dir = None  # no checklist model to link beside the weights
    fit_info = fit_weights(fit)
    main = evaluate(stage_view(cfg, "evaluate"), fit_info=fit_info)
    return root, cfg, main


def counting_trainings(monkeypatch):
    """Count the curve's bt_head trainings (the real training runs)."""
    calls = []
    real = curve_module.train_pairwise_baseline

    def counted(*args, **kwargs):
        calls.append(kwargs["fit_pairs"]["num_pairs"])
        return real(*args, **kwargs)

    monkeypatch.setattr(curve_module, "train_pairwise_baseline", counted)
    return calls


def test_the_curve_has_two_rows_per_budget_and_the_main_budget_is_the_main_evaluation(
    evaluated, monkeypatch
):
    root, cfg, main = evaluated
    trained = counting_trainings(monkeypatch)
    available = main["num_train_pairs"]
    assert available > 10  # the smoke fit takes all train pairs (num_pairs: null)
    rows = data_efficiency(cfg, {"model": "oracle"}, main, None)
    assert [(r["budget"], r["train_pairs"], r["method"]) for r in rows] == [
        ("10", 10, "VisionReward"),
        ("10", 10, BT),
        ("all", available, "VisionReward"),
        ("all", available, BT),
    ]
    assert trained == [10]  # the main budget is not retrained
    main_rows = {r["method"]: r for r in main["rows"]}
    for row in rows[2:]:
        assert row == {"budget": "all", "train_pairs": available, **main_rows[row["method"]]}
    for row in rows[:2]:
        assert row["test_pairs"] == main_rows["VisionReward"]["test_pairs"]
        assert 0 <= row["tau_star_low"] <= row["tau_star"] <= row["tau_star_high"] <= 1
        assert row["diff_low"] <= row["diff"] <= row["diff_high"]
    vr, bt = rows[0], rows[1]
    # VisionReward minus bt_head, paired: the difference of their point estimates.
    assert bt["vs_visionreward_tau_star"] == pytest.approx(vr["tau_star"] - bt["tau_star"])
    low, high = bt["vs_visionreward_tau_star_low"], bt["vs_visionreward_tau_star_high"]
    assert low <= bt["vs_visionreward_tau_star"] <= high
    # Near-oracle answers weighted on 10 pairs still rank well above chance.
    assert vr["diff"] > 0.6
    out = root / "out" / "evaluation"
    with (out / "data_efficiency.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert [int(r["train_pairs"]) for r in table] == [10, 10, available, available]
    assert float(table[1]["tau_star"]) == pytest.approx(bt["tau_star"])
    assert "| all |" in (out / "data_efficiency.md").read_text()
    assert (out / "data_efficiency.png").stat().st_size > 5000
    assert not list((out / "data_efficiency").glob("*.checkpoints"))  # removed once written

    # A rerun (a killed job's, say) reuses the finished budget's rows: nothing is retrained.
    stored = out / "data_efficiency" / "budget-10.json"
    written = stored.stat().st_mtime_ns
    assert data_efficiency(cfg, {"model": "oracle"}, main, None) == rows
    assert trained == [10] and stored.stat().st_mtime_ns == written
    # Other annotations (another checklist model) are not the same rows: recomputed.
    again = data_efficiency(cfg, {"model": "another"}, main, None)
    assert trained == [10, 10] and stored.stat().st_mtime_ns != written
    assert again[0] == rows[0]  # the same fit on the same answers


def test_a_budget_refitted_on_the_main_pairs_reproduces_the_main_evaluation(evaluated):
    # The curve draws a budget's pairs exactly as fit_weights does: refitting at the main fit's
    # budget (without the main evaluation to reuse) gives VisionReward's row exactly.
    root, cfg, main = evaluated
    rows = data_efficiency_curve(
        stage_view(cfg, "fit_weights"),
        stage_view(cfg, "evaluate"),
        [None],
        folder=root / "refit",
    )
    main_rows = {r["method"]: r for r in main["rows"]}
    assert {k: rows[0][k] for k in main_rows["VisionReward"]} == main_rows["VisionReward"]
    assert rows[1]["tau_star"] == pytest.approx(main_rows[BT]["tau_star"], abs=1e-12)
    saved = json.loads((root / "refit" / f"budget-{main['num_train_pairs']}.json").read_text())
    assert saved["rows"] == rows


def test_a_budget_above_the_train_pairs_is_refused_naming_its_item(evaluated):
    root, _, _ = evaluated  # its split is rendered: checking is quick
    cfg = main_job(root, "task.data_efficiency.budgets=[10,100000]")
    with pytest.raises(PairBudgetError, match=r"task\.data_efficiency\.budgets\[1\]=100000 but"):
        check_budgets(cfg)


@given(
    budgets=st.lists(st.one_of(st.none(), st.integers(1, 200)), max_size=5),
    available=st.integers(1, 150),
)
def test_budgets_resolve_to_distinct_pair_counts_within_the_train_part(budgets, available):
    counts = [available if b is None else b for b in budgets]
    if any(c > available for c in counts) or len(set(counts)) < len(counts):
        with pytest.raises(PairBudgetError, match=r"task\.data_efficiency\.budgets\[\d+\]"):
            resolve_budgets(budgets, available)
    else:
        assert resolve_budgets(budgets, available) == counts


def test_two_budgets_of_the_same_pairs_are_refused():
    with pytest.raises(PairBudgetError, match=r"budgets\[1\]=None is 96 train pairs, as"):
        resolve_budgets([96, None], 96)
