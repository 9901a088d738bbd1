"""MPO pair selection against a brute-force loop, and the Diffusion-DPO loss on hand-made cases."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vrexp.preference import diffusion_dpo_loss, dominance_statistics, select_pairs


def brute_force(
    scores: list[list[list[float]]], rule: str, threshold: float, epsilon: float = 0.0
) -> list[tuple]:
    rows = []
    for p, candidates in enumerate(scores):
        for i, win in enumerate(candidates):
            for j, lose in enumerate(candidates):
                gap = sum(win) - sum(lose)
                if gap <= 0 or gap < threshold:
                    continue
                if rule == "mpo" and any(a + epsilon < b for a, b in zip(win, lose, strict=True)):
                    continue
                rows.append((p, i, j))
    return rows


@st.composite
def score_tensors(draw):
    p, k, d = draw(st.integers(1, 4)), draw(st.integers(1, 5)), draw(st.integers(1, 4))
    # Small integers: many equal totals and equal dimension scores, the edge cases of both rules.
    values = st.integers(-2, 2).map(float)
    return [[[draw(values) for _ in range(d)] for _ in range(k)] for _ in range(p)]


@settings(max_examples=200, deadline=None)
@given(
    scores=score_tensors(),
    rule=st.sampled_from(["total", "mpo"]),
    threshold=st.sampled_from([0.0, 0.5, 1.0, 3.0]),
    epsilon=st.sampled_from([0.0, 0.5, 1.0, 2.0]),
)
def test_select_pairs_matches_a_brute_force_loop(scores, rule, threshold, epsilon):
    rows = select_pairs(torch.tensor(scores), rule, threshold, epsilon)
    assert rows.dtype == torch.long and rows.shape[1] == 3
    assert [tuple(r) for r in rows.tolist()] == brute_force(scores, rule, threshold, epsilon)
    stats = dominance_statistics(torch.tensor(scores), threshold)
    assert stats["total_rule_pairs"] == len(brute_force(scores, "total", threshold))
    assert stats["dominating"] == len(brute_force(scores, "mpo", threshold))


def test_mpo_drops_a_higher_total_that_regresses_a_dimension():
    scores = torch.tensor([[[3.0, 0.0], [1.0, 1.0], [0.5, 0.5]]])  # totals 3, 2, 1
    total = {tuple(r) for r in select_pairs(scores, "total").tolist()}
    assert total == {(0, 0, 1), (0, 0, 2), (0, 1, 2)}
    # Candidate 0 wins on total but is worse than 1 and 2 on the second dimension.
    assert select_pairs(scores, "mpo").tolist() == [[0, 1, 2]]
    assert select_pairs(scores, "mpo", threshold=1.5).tolist() == []
    # Candidate 0 trails 1 by 1.0 and 2 by 0.5 on the second dimension: epsilon lets it win.
    assert select_pairs(scores, "mpo", epsilon=0.5).tolist() == [[0, 0, 2], [0, 1, 2]]
    assert select_pairs(scores, "mpo", epsilon=1.0).tolist() == [[0, 0, 1], [0, 0, 2], [0, 1, 2]]
    with pytest.raises(ValueError, match=r"dpo\.epsilon=-0\.1 must be >= 0"):
        select_pairs(scores, "mpo", epsilon=-0.1)
    assert select_pairs(scores, "total", threshold=1.5).tolist() == [[0, 0, 2]]
    stats = dominance_statistics(scores)
    assert (stats["dominating"], stats["non_dominating"]) == (1, 2)
    assert stats["dominating_fraction"] == pytest.approx(1 / 3)


def test_select_pairs_rejects_bad_input_by_name():
    with pytest.raises(ValueError, match=r"\[prompts, candidates, dimensions\]"):
        select_pairs(torch.zeros(3, 4))
    scores = torch.zeros(2, 3, 4)
    scores[1, 2, 0] = float("nan")
    with pytest.raises(ValueError, match="prompt 1, candidate 2, dimension 0"):
        select_pairs(scores)
    with pytest.raises(ValueError, match="rule must be one of"):
        select_pairs(torch.zeros(1, 2, 1), "pareto")


def test_dpo_loss_is_log2_when_the_model_is_the_reference():
    pred = torch.randn(4, 3, 8, 8, requires_grad=True)
    target = torch.randn(4, 3, 8, 8)
    loss, accuracy = diffusion_dpo_loss(pred, pred.detach().clone(), target, beta=500.0)
    assert loss.item() == pytest.approx(math.log(2))
    assert accuracy.item() == 0.5  # every pair is an exact tie, counted half


def test_dpo_loss_matches_a_hand_computation_and_rewards_the_winner():
    target = torch.zeros(2, 2)
    ref = torch.tensor([[1.0, 1.0], [1.0, 1.0]])  # reference errors 1 (winner) and 1 (loser)
    model = torch.tensor([[0.0, 0.0], [2.0, 2.0]], requires_grad=True)  # 0 and 4
    loss, accuracy = diffusion_dpo_loss(model, ref, target, beta=0.5)
    inside = -0.5 * 0.5 * ((0.0 - 1.0) - (4.0 - 1.0))  # = 1.0
    assert loss.item() == pytest.approx(-math.log(1 / (1 + math.exp(-inside))))
    assert accuracy.item() == 1.0
    loss.backward()
    # Descending the loss pushes the loser's prediction further from its target (here 0).
    assert torch.all(model.grad[1] < 0)
    stepped = (model - 0.1 * model.grad).detach()
    assert diffusion_dpo_loss(stepped, ref, target, beta=0.5)[0] < loss


def test_dpo_loss_sends_no_gradient_to_the_reference():
    model = torch.randn(2, 5, requires_grad=True)
    ref = torch.randn(2, 5, requires_grad=True)
    loss, _ = diffusion_dpo_loss(model, ref, torch.randn(2, 5), beta=10.0)
    loss.backward()
    assert ref.grad is None and model.grad is not None


def test_dpo_loss_rejects_mismatched_or_odd_batches():
    with pytest.raises(ValueError, match="share a shape"):
        diffusion_dpo_loss(torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2, 3), 1.0)
    with pytest.raises(ValueError, match="even size"):
        diffusion_dpo_loss(torch.zeros(3, 2), torch.zeros(3, 2), torch.zeros(3, 2), 1.0)
