"""The optimiser recipe shared by the backbone fine-tuning modules: AdamW, warmup, then cosine."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch


def adamw_warmup_cosine(
    params: Iterable[torch.nn.Parameter],
    *,
    lr: float,
    weight_decay: float,
    warmup_steps: int,
    total_steps: int,
) -> dict[str, Any]:
    """``configure_optimizers`` output: linear warmup, then cosine decay to 10% of ``lr``."""
    optimizer = torch.optim.AdamW(list(params), lr=lr, weight_decay=weight_decay)
    total = max(int(total_steps), 1)
    warmup = min(warmup_steps, total // 10 + 1)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min((step - warmup) / max(total - warmup, 1), 1.0)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
