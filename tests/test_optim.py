"""The fine-tuning optimiser recipe: linear warmup, then cosine decay to a tenth."""

from __future__ import annotations

import itertools

import torch

from vrexp.modules.optim import adamw_warmup_cosine


def test_step_schedule_warms_up_then_decays_to_a_tenth():
    params = [torch.nn.Parameter(torch.zeros(1))]
    out = adamw_warmup_cosine(params, lr=1.0, weight_decay=0.0, warmup_steps=4, total_steps=40)
    scheduler = out["lr_scheduler"]["scheduler"]
    rates = []
    for _ in range(40):
        rates.append(scheduler.get_last_lr()[0])
        out["optimizer"].step()
        scheduler.step()
    assert rates[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(a >= b for a, b in itertools.pairwise(rates[3:]))
    assert abs(rates[-1] - 0.1) < 0.01
