"""``RewardCurve``: score periodic validation samples during generator training (paper Fig. 11).

Every ``every_n_steps`` optimizer steps (and before the first), the callback samples the same
prompts from the same noise, scores them with VisionReward, and logs the total and per-dimension
mean reward (plus any extra judge, such as SynthWorld's oracle utility) against training samples.
The points so far are part of each checkpoint, so a resumed run continues the same curve.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytorch_lightning as pl


class RewardCurve(pl.Callback):
    def __init__(
        self,
        reward: Any,
        prompts: Sequence[str],
        seeds: Sequence[int],
        *,
        every_n_steps: int = 50,
        batch_size: int = 64,
        judge: Callable[[Sequence[np.ndarray], Sequence[str]], np.ndarray] | None = None,
    ) -> None:
        self.reward, self.prompts, self.seeds = reward, list(prompts), list(seeds)
        self.every_n_steps, self.batch_size, self.judge = every_n_steps, batch_size, judge
        self.history: list[dict[str, float]] = []

    def measure(self, trainer: pl.Trainer, module: pl.LightningModule) -> dict[str, float]:
        generator = module.generator
        media = np.concatenate(
            [
                generator.generate(
                    self.prompts[i : i + self.batch_size], self.seeds[i : i + self.batch_size]
                )
                for i in range(0, len(self.prompts), self.batch_size)
            ]
        )
        scores = self.reward.score(list(media), self.prompts)
        batch = getattr(trainer.train_dataloader, "batch_size", None) or 1
        point = {
            "step": trainer.global_step,
            "samples_seen": trainer.global_step * batch,
            "reward/total": float(scores.total.mean()),
            **{
                f"reward/{name}": float(scores.dimensions[:, d].mean())
                for d, name in enumerate(scores.dimension_names)
            },
        }
        if self.judge is not None:
            point["oracle/utility"] = float(np.mean(self.judge(list(media), self.prompts)))
        self.history.append(point)
        if trainer.logger is not None:
            trainer.logger.log_metrics(
                {k: v for k, v in point.items() if k != "step"}, step=trainer.global_step
            )
        return point

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}  # a resumed run continues the same curve

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict["history"])

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if not self.history:
            self.measure(trainer, module)

    def on_train_batch_end(
        self, trainer: pl.Trainer, module: pl.LightningModule, *args: Any
    ) -> None:
        if trainer.global_step % self.every_n_steps == 0:
            self.measure(trainer, module)

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if not self.history or self.history[-1]["step"] != trainer.global_step:
            self.measure(trainer, module)
