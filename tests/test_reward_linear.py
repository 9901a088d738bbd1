"""Linear reward: scoring, masking, (de)serialisation, pruning, the released weights, and the
non-negative fitting (exact L-BFGS-B against scikit-learn, KKT, and Algorithm 1's SGD)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tests.conftest import CONF
from vrexp.checklist import Checklist, ChecklistError
from vrexp.configs.tasks import SGDSettings
from vrexp.modules.weights import fit_sgd
from vrexp.reward import (
    LinearReward,
    RewardError,
    fit_exact,
    fit_linear_reward,
    logistic_loss,
    pair_differences,
)
from vrexp.reward.selection import write_select_checklist

OFFICIAL = CONF / "official" / "visionreward"


def load(name: str) -> Checklist:
    return Checklist.from_yaml(CONF / "dimensions" / f"{name}.yaml")


def official_lines(name: str) -> list[str]:
    return [line.rstrip() for line in (OFFICIAL / name).read_text().splitlines()]


def official_coef(name: str) -> list[float]:
    raw = json.loads((OFFICIAL / name).read_text())
    return raw["coef"] if isinstance(raw, dict) else raw


def unpenalised_logistic_regression():
    """scikit-learn's plain (no penalty, no intercept) logistic regression, across versions."""
    import sklearn
    from sklearn.linear_model import LogisticRegression

    major, minor = (int(v) for v in sklearn.__version__.split(".")[:2])
    # penalty=None (>= 1.2) is deprecated from 1.8 in favour of C=inf.
    free = {"C": np.inf} if (major, minor) >= (1, 8) else {"penalty": None}
    return LogisticRegression(**free, fit_intercept=False, tol=1e-12, max_iter=10_000)


def planted_pairs(
    rng: np.random.Generator, n_pairs: int, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """±1 answers for two items per pair, ΔX/2 in {-1, 0, 1}, labels by logistic sampling."""
    a = rng.integers(0, 2, (n_pairs, len(weights)))
    b = rng.integers(0, 2, (n_pairs, len(weights)))
    dx = (a - b).astype(np.float64)
    y = (rng.random(n_pairs) < 1.0 / (1.0 + np.exp(-dx @ weights))).astype(np.float64)
    return dx, y


# ============================================================================ fitting
def test_fit_exact_matches_unpenalised_sklearn_when_no_bound_is_active():
    rng = np.random.default_rng(1)
    planted = rng.uniform(0.5, 1.5, 8)
    dx = rng.normal(size=(6000, 8))
    y = (rng.random(6000) < 1 / (1 + np.exp(-dx @ planted))).astype(np.float64)
    ours = fit_exact(dx, y)
    reference = unpenalised_logistic_regression().fit(dx, y).coef_.ravel()
    assert (reference > 0.2).all()  # no bound active: the constrained and free optima coincide
    np.testing.assert_allclose(ours, reference, atol=1e-4, rtol=0)


def test_fit_exact_is_non_negative_and_satisfies_kkt_where_the_free_fit_is_negative():
    rng = np.random.default_rng(2)
    n = 8000
    base = rng.normal(size=(n, 3))
    # Collinear copies plus negatively planted weights: the free fit has negative coefficients.
    dx = np.column_stack([base, base[:, 0] + 0.1 * rng.normal(size=n), rng.normal(size=(n, 2))])
    planted = np.array([1.0, 0.8, 0.5, -0.6, -0.7, 0.4])
    y = (rng.random(n) < 1 / (1 + np.exp(-dx @ planted))).astype(np.float64)
    free_w = unpenalised_logistic_regression().fit(dx, y).coef_.ravel()
    assert (free_w < -0.1).sum() >= 2

    w = fit_exact(dx, y)
    assert (w >= 0).all()
    zero = w == 0
    assert zero.sum() >= 2
    _, grad = logistic_loss(w, dx, y)
    assert (grad[zero] > -1e-7).all()  # moving a zero weight up cannot lower the loss
    np.testing.assert_allclose(grad[~zero], 0.0, atol=1e-6)
    # And it is the constrained optimum: better than clipping the free solution.
    assert logistic_loss(w, dx, y)[0] < logistic_loss(np.maximum(free_w, 0), dx, y)[0]


def test_fit_exact_recovers_planted_weights_at_benchmark_size():
    # Speed is measured in benchmarks/fit_weights.py; here, correctness at that size.
    rng = np.random.default_rng(3)
    planted = rng.uniform(0, 0.5, 64) * (rng.random(64) > 0.3)
    dx, y = planted_pairs(rng, 44_000, planted)
    w = fit_exact(dx, y)
    assert np.abs(w - planted).max() < 0.1


def test_sgd_weight_module_agrees_with_exact():
    rng = np.random.default_rng(4)
    # Two negatively planted weights: their constrained optimum is 0, so the projection matters.
    planted = np.array([0.9, 0.6, -0.4, 0.4, 0.0, 0.3, 0.2, 0.7, -0.3, 0.5, 0.0, 0.8])
    dx, y = planted_pairs(rng, 3000, planted)
    exact = fit_exact(dx, y)
    assert exact[2] == 0 and exact[8] == 0
    sgd = fit_sgd(dx, y, SGDSettings(lr=0.2, batch_size=256, max_epochs=150, tol=1e-4), seed=0)
    assert (sgd >= 0).all()
    # Constant-step SGD hovers around the optimum; measured max |diff| ~0.007, asserted < 0.03.
    assert np.abs(sgd - exact).max() < 0.03
    assert ((sgd == 0) == (exact == 0)).all()  # per-epoch projection lands on the same zeros


def test_weight_module_projects_stops_at_tolerance_and_logs():
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader, TensorDataset

    from vrexp.modules import WeightModule

    rng = np.random.default_rng(5)
    dx = rng.integers(-1, 2, (2000, 4)).astype(np.float64)
    dx[:, 2] = dx[:, 0] + 0.3 * rng.normal(size=2000)  # collinear, with a negative planted weight
    y = (rng.random(2000) < 1 / (1 + np.exp(-dx @ np.array([1.0, 0.5, -0.5, 0.2])))).astype(float)
    loader = DataLoader(
        TensorDataset(torch.tensor(dx, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)),
        batch_size=2000,  # full batch: deterministic steps, so the eps stop must trigger
    )
    module = WeightModule(4, SGDSettings(lr=2.0, tol=1e-3))
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=2000,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, loader)
    assert trainer.current_epoch < 2000
    metrics = trainer.callback_metrics
    assert float(metrics["weights/delta_norm"]) <= 1e-3
    w = module.weights.detach().numpy()
    assert (w >= 0).all() and w[2] == 0
    assert float(metrics["weights/num_zero"]) == float((w == 0).sum())
    assert float(metrics["train/loss"]) == pytest.approx(
        logistic_loss(w.astype(np.float64), dx, y)[0], abs=1e-3
    )
    np.testing.assert_allclose(w, fit_exact(dx, y), atol=0.02)


def test_pair_differences_drop_ties_and_apply_masks():
    c = load("synthworld_image")
    face = next(s for s in c.sub_dimensions if s.presence is not None)
    rng = np.random.default_rng(6)
    a = rng.integers(0, 2, (5, len(c.questions))).astype(np.float64)
    b = rng.integers(0, 2, (5, len(c.questions))).astype(np.float64)
    a[:, c.column(face.presence.id)] = 0  # no face in A: its face answers are neutral
    b[:, c.column(face.presence.id)] = 1
    pairs = pair_differences(c, a, b, np.array([1, 0, -1, 2, 0]))
    assert pairs.kept.tolist() == [0, 2, 3]
    assert pairs.y.tolist() == [1.0, 0.0, 1.0]
    reward = LinearReward(c, np.zeros(pairs.dx.shape[1]))
    col = [q.id for q in reward.feature_questions].index(face.questions[0].id)
    np.testing.assert_array_equal(
        pairs.dx[:, col], -(2 * b[[0, 2, 3], c.column(face.questions[0].id)] - 1)
    )


def test_fit_linear_reward_recovers_planted_weights():
    c = load("synthworld_image")
    rng = np.random.default_rng(7)
    reward = LinearReward(c, rng.uniform(0, 1, len(c.questions) - 1))
    a = rng.integers(0, 2, (20_000, len(c.questions))).astype(np.float64)
    b = rng.integers(0, 2, (20_000, len(c.questions))).astype(np.float64)
    logit = (reward.score(a) - reward.score(b)).numpy()
    labels = np.where(rng.random(20_000) < 1 / (1 + np.exp(-logit)), 1, -1)
    fitted = fit_linear_reward(c, a, b, labels)
    assert fitted.feature_questions == reward.feature_questions
    assert torch.allclose(fitted.weights, reward.weights, atol=0.1)


# ============================================================================ LinearReward
probabilities = st.integers(1, 6).flatmap(
    lambda n: arrays(np.float64, (n, 60), elements=st.floats(0, 1))
)


@settings(max_examples=40, deadline=None)
@given(answers=probabilities, reduction=st.sampled_from(["sum", "mean"]))
def test_dimension_scores_sum_to_the_score(answers, reduction):
    c = load("visionreward_image")
    w = np.random.default_rng(0).uniform(0, 1, 55)
    reward = LinearReward(c, w, reduction=reduction)
    dims = reward.dimension_scores(answers)
    assert dims.shape == (len(answers), 5)
    torch.testing.assert_close(dims.sum(1), reward.score(answers))
    torch.testing.assert_close(reward.contributions(answers).sum(1), reward.score(answers))
    # Eq. 6 by hand for one dimension: only Quality's weighted features count.
    quality = [i for i, q in enumerate(reward.feature_questions) if q.dimension == "Quality"]
    expected = (reward.features(answers)[:, quality] * torch.tensor(w[quality])).sum(1)
    if reduction == "mean":
        expected = expected / 55
    torch.testing.assert_close(dims[:, c.dimension_names.index("Quality")], expected)


@settings(max_examples=40, deadline=None)
@given(
    answers=probabilities,
    encoding=st.sampled_from(["pm1", "binary"]),
    reduction=st.sampled_from(["sum", "mean"]),
)
def test_every_total_lies_within_the_bounds_and_the_bounds_are_reached(
    answers, encoding, reduction
):
    c = load("visionreward_image")
    reward = LinearReward(
        c, np.random.default_rng(1).uniform(0, 1, 55), encoding=encoding, reduction=reduction
    )
    low, high = reward.bounds()
    totals = reward.score(answers)
    assert (totals >= low - 1e-9).all() and (totals <= high + 1e-9).all()
    # All yes reaches the top; all no with every gate present (presence questions yes) the bottom.
    presence = torch.tensor([q.kind == "presence" for q in c.questions])
    all_yes, all_no = torch.ones(1, 60, dtype=torch.float64), presence[None].double()
    assert float(reward.score(all_yes)) == pytest.approx(high)
    assert float(reward.score(all_no)) == pytest.approx(low)
    # External items (the alignment probability) enter raw, so they bottom out at 0, not -1.
    inside = torch.tensor([not q.external for q in reward.feature_questions])
    scale = 1 / reward.num_features if reduction == "mean" else 1
    expected = -float(reward.weights[inside].sum()) * scale if encoding == "pm1" else 0.0
    assert low == pytest.approx(expected) and inside.sum() < reward.num_features


def test_masking_sets_dependants_to_zero_in_both_encodings():
    c = load("visionreward_image")
    answers = np.ones((2, 60))
    answers[1, c.column(1)] = 0.3  # body P(yes) <= 0.5: absent
    for encoding in ("pm1", "binary"):
        reward = LinearReward(c, np.ones(55), encoding=encoding)
        feats = reward.features(answers)
        ids = [q.id for q in reward.feature_questions]
        body = [ids.index(i) for i in (44, 45, 46, 47)]
        assert feats[0, body].tolist() == [1.0] * 4
        assert feats[1, body].tolist() == [0.0] * 4
        assert feats[1, ids.index(52)] == 1.0  # hands present: not masked
        assert reward.score(answers)[0] - reward.score(answers)[1] == pytest.approx(4.0)
    assert 1 not in ids and 16 not in ids and len(ids) == 55  # presence questions get no weight


def test_pm1_and_binary_encodings():
    c = load("visionreward_video_select")
    rng = np.random.default_rng(8)
    w = rng.uniform(0, 1, 29)
    answers = rng.random((7, 29))
    pm1, binary = LinearReward(c, w, encoding="pm1"), LinearReward(c, w, encoding="binary")
    torch.testing.assert_close(pm1.features(answers), torch.tensor(2 * answers - 1))
    torch.testing.assert_close(binary.features(answers), torch.tensor(answers))
    # 2a - 1 is affine: the ±1 score is 2 * binary score - sum(w), so rankings agree.
    torch.testing.assert_close(pm1.score(answers), 2 * binary.score(answers) - w.sum())


def test_alignment_enters_raw_and_overrides_the_column():
    c = load("visionreward_image_select")
    reward = LinearReward.from_official("image_select", checklist=c)
    answers = np.ones((3, 31))
    answers[:, c.column(60)] = [0.2, 0.5, 0.9]
    f_col = reward.features(answers)[:, -1]
    assert reward.feature_questions[-1].id == 60
    assert f_col.tolist() == [0.2, 0.5, 0.9]  # not 2a - 1
    answers[:, c.column(60)] = np.nan  # ignored when alignment is given
    f_arg = reward.features(answers, alignment=np.array([0.1, 0.4, 1.0]))
    assert f_arg[:, -1].tolist() == [0.1, 0.4, 1.0]
    assert (f_arg[:, :-1] == 1).all()
    delta = reward.score(answers, alignment=np.array([1.0, 0.0, 0.0]))
    assert (delta[0] - delta[1]).item() == pytest.approx(2.3542882631150923)
    with pytest.raises(ChecklistError, match=r"NaN at row 0, question 60 .*alignment="):
        reward.features(answers)
    with pytest.raises(RewardError, match="no external question"):
        LinearReward(load("synthworld_image"), np.ones(17)).score(np.ones((3, 18)), np.ones(3))
    with pytest.raises(RewardError, match="shape"):
        reward.score(answers, alignment=np.ones(4))


def test_weight_and_answer_validation_messages():
    c = load("visionreward_image_select")
    with pytest.raises(RewardError, match=r"got 27 weights.*'visionreward_image_select' has 28"):
        LinearReward(c, np.ones(27))
    w = np.ones(28)
    w[3] = -0.1
    with pytest.raises(RewardError, match=r"question 9 'Does the image avoid an unclear main"):
        LinearReward(c, w)
    w[3] = np.nan
    with pytest.raises(RewardError, match=r"question 9 .* is nan"):
        LinearReward(c, w)
    reward = LinearReward(c, np.ones(28))
    with pytest.raises(ChecklistError, match=r"must have shape \[N, 31\], got \(2, 30\)"):
        reward.score(np.ones((2, 30)))
    with pytest.raises(ChecklistError, match=r"\[0, 1\]"):
        reward.score(np.full((2, 31), 2.0))
    with pytest.raises(RewardError, match="not a presence question"):
        LinearReward(c, np.ones(28), masks={4: [5]})


def test_save_load_round_trip_and_mismatch(tmp_path):
    reward = LinearReward.from_official("image_select")
    path = tmp_path / "reward.json"
    reward.save(path)
    data = json.loads(path.read_text())
    assert data["checklist"] == "visionreward_image_select"
    assert (data["encoding"], data["reduction"]) == ("pm1", "sum")
    assert data["questions"][-1] == {
        "id": 60,
        "text": 'Does the image show "[[prompt]]"?',
        "dimension": "Alignment",
        "weight": 2.3542882631150923,
    }
    again = LinearReward.load(path, load("visionreward_image_select"))
    assert torch.equal(again.weights, reward.weights)
    assert again.masks == reward.masks and again.masks[1] == (44, 46, 47, 58, 59)
    answers = np.random.default_rng(9).random((4, 31))
    torch.testing.assert_close(again.score(answers), reward.score(answers), rtol=0, atol=0)

    with pytest.raises(RewardError, match=r"feature 0 is question 4 'Is the image symmetrical\?'"):
        LinearReward.load(path, load("synthworld_image"))
    with pytest.raises(
        RewardError,
        match=r"feature 2 is question 8 .* question 6 'Are the objects well-coordinated",
    ):
        LinearReward.load(path, load("visionreward_image"))
    data["questions"] = data["questions"][:-1]  # same prefix, one question short
    path.write_text(json.dumps(data))
    with pytest.raises(RewardError, match=r"has 27 feature questions.*has 28: question 60"):
        LinearReward.load(path, load("visionreward_image_select"))


def test_select_checklist_recovers_the_official_select_lists_and_round_trips(tmp_path):
    full = LinearReward.from_official("image")
    pruned = full.select_checklist()
    assert [q.text for q in pruned.vlm_questions] == official_lines("image_questions_select.txt")
    assert {q.id for q in pruned.questions if q.kind == "presence"} == {1, 2, 3}
    assert (
        pruned.to_config()["hierarchy"]
        == load("visionreward_image_select").to_config()["hierarchy"]
    )
    pruned.to_yaml(tmp_path / "pruned.yaml")
    assert Checklist.from_yaml(tmp_path / "pruned.yaml") == pruned

    # Video: the paper's 64 weights (csv) prune to the 29-question select file.
    video = load("visionreward_video")
    with (OFFICIAL / "video_checklist.csv").open() as f:
        paper = {int(r["id"]): float(r["paper_weight"]) for r in csv.DictReader(f)}
    reward = LinearReward(video, [paper[q.id] for q in video.questions])
    pruned = reward.select_checklist()
    assert [q.text for q in pruned.questions] == official_lines("video_questions_select.txt")
    # A threshold drops more; dimensions left empty disappear.
    small = reward.select_checklist(0.3)
    assert {q.id for q in small.questions} == {1, 4, 38, 50, 60}
    assert reward.questions_above(0.3) == {q.id for q in small.questions}
    assert reward.questions_above(5.0) == set()
    assert small.dimension_names == ["Alignment", "Fidelity", "Physics"]
    small.to_yaml(tmp_path / "small.yaml")
    assert Checklist.from_yaml(tmp_path / "small.yaml") == small
    with pytest.raises(RewardError, match="nothing left"):
        reward.select_checklist(5.0)


# ============================================================================ released weights
def official_image_select_score(pm1: np.ndarray, vqa: float, coef: list[float]) -> float:
    """Transcription of the released ``cal_score`` (inference-image.py), one item."""
    mask_feature_map = {0: [22, 23, 24, 28, 29], 1: [25, 26], 2: [27]}
    reward = [float(v) for v in pm1]
    for m, features in mask_feature_map.items():
        for f in features:
            reward[f] *= int(reward[m] > 0)
    features = [vqa, *reward[3:]]
    return float(np.dot(features, coef))


def to_our_columns(c: Checklist, lines: list[str], official_answers: np.ndarray) -> np.ndarray:
    """Official-file-order answers -> our flat-order answer array (external columns NaN)."""
    ours = np.full((len(official_answers), len(c.questions)), np.nan)
    texts = c.question_texts
    for i, line in enumerate(lines):
        ours[:, texts.index(line)] = official_answers[:, i]
    return ours


def hard_answers(width: int):
    return st.integers(1, 6).flatmap(
        lambda n: st.tuples(
            arrays(np.int64, (n, width), elements=st.integers(0, 1)),
            arrays(np.float64, (n,), elements=st.floats(0, 1)),
        )
    )


@settings(max_examples=60, deadline=None)
@given(data=hard_answers(30))
def test_official_image_select_equals_the_released_cal_score(data):
    hard, vqa = data
    c = load("visionreward_image_select")
    lines = official_lines("image_questions_select.txt")
    coef = official_coef("image_weight_select.json")
    reward = LinearReward.from_official("image_select")
    expected = [
        official_image_select_score(2 * h - 1, v, coef) for h, v in zip(hard, vqa, strict=True)
    ]
    ours = to_our_columns(c, lines, hard)
    np.testing.assert_allclose(reward.score(ours, alignment=vqa).numpy(), expected, atol=1e-12)
    ours[:, c.column(60)] = vqa  # the same value in the column instead
    np.testing.assert_allclose(reward.score(ours).numpy(), expected, atol=1e-12)


def test_official_image_select_weight_order_and_masks():
    reward = LinearReward.from_official("image_select")
    coef = official_coef("image_weight_select.json")
    # Official order puts alignment first; our flat order has id 60 last.
    assert reward.weight_of(60) == coef[0]
    assert reward.weight_of(4) == coef[1] and reward.weight_of(59) == coef[-1]
    assert reward.weight_of(20) == pytest.approx(0.3248, abs=1e-4)  # the repo's value, not 0.032
    assert reward.masks == {1: (44, 46, 47, 58, 59), 2: (50, 51), 3: (52,)}
    # Our YAML's structure gates the same human questions; only body -> safety is code-only.
    structure = LinearReward(load("visionreward_image_select"), np.ones(28)).masks
    assert structure == {1: (44, 46, 47), 2: (50, 51), 3: (52,)}


@settings(max_examples=40, deadline=None)
@given(data=hard_answers(59))
def test_official_image_uses_55_weights_and_scores_like_select(data):
    hard, vqa = data
    c = load("visionreward_image")
    lines = official_lines("image_questions.txt")
    coef = official_coef("image_weight.json")
    assert len(coef) == 55
    with (OFFICIAL / "image_checklist.csv").open() as f:
        rows = list(csv.DictReader(f))
    gates: dict[int, list[int]] = {}
    for r in rows:
        for g in {r["masked_by_paper"], r["masked_by_repo_code"]} - {""}:
            gates.setdefault(int(g), []).append(int(r["id"]))
    masks_ids = {1, 2, 3, 16, 27}
    reward = LinearReward.from_official("image")
    assert reward.num_features == 55
    for row, (h, v) in enumerate(zip(hard, vqa, strict=True)):
        pm1 = {i + 1: 2.0 * h[i] - 1 for i in range(59)}  # line number = id
        for g, deps in gates.items():
            for d in deps:
                pm1[d] *= int(pm1[g] > 0)
        features = [v] + [pm1[i] for i in range(1, 60) if i not in masks_ids]
        expected = float(np.dot(features, coef))
        ours = to_our_columns(c, lines, hard[row : row + 1])
        assert reward.score(ours, alignment=vqa[row : row + 1]).item() == pytest.approx(
            expected, abs=1e-12
        )
    # The select weights are the non-zero full weights: the same answers score the same.
    select_lines = official_lines("image_questions_select.txt")
    select_hard = hard[:, [lines.index(t) for t in select_lines]]
    select = LinearReward.from_official("image_select")
    np.testing.assert_allclose(
        select.score(
            to_our_columns(load("visionreward_image_select"), select_lines, select_hard), vqa
        ),
        reward.score(to_our_columns(c, lines, hard), vqa),
        atol=1e-12,
    )


@settings(max_examples=60, deadline=None)
@given(data=hard_answers(29))
def test_official_video_select_equals_the_released_mean_score(data):
    hard, _ = data
    c = load("visionreward_video_select")
    lines = official_lines("video_questions_select.txt")
    weight = np.array(official_coef("video_weight.json"))
    reward = LinearReward.from_official("video_select")
    assert (reward.reduction, reward.masks) == ("mean", {})
    expected = [float(np.mean((2 * h - 1) * weight)) for h in hard]
    ours = to_our_columns(c, lines, hard)
    np.testing.assert_allclose(reward.score(ours).numpy(), expected, atol=1e-12)
    torch.testing.assert_close(reward.dimension_scores(ours).sum(1), reward.score(ours))


def test_an_all_zero_fit_writes_no_select_checklist(tmp_path):
    """A fit on uninformative answers may set every weight to 0: fit_weights then writes no
    select file (and removes a stale one) instead of failing."""
    video = load("visionreward_video")
    features = [q for q in video.questions if q.kind != "presence"]
    path = tmp_path / "select_checklist.yaml"
    path.write_text("stale")
    zero = LinearReward(video, [0.0] * len(features))
    assert write_select_checklist(zero, path, 0.0) is None and not path.exists()
    one = LinearReward(video, [1.0] + [0.0] * (len(features) - 1))
    written = write_select_checklist(one, path, 0.0)
    assert [q.id for q in written.questions if q.kind != "presence"] == [features[0].id]
    assert path.is_file()
