"""Fitting the linear reward weights: the exact solver against Algorithm 1's SGD, in one process.

    python benchmarks/fit_weights.py [--pairs 44000] [--lr 0.1] [--batch-size 512] [--max-epochs 100]

Synthetic data at the paper's image scale (44k pairs) on the 64-question VisionReward video
checklist: hard answers for two items per pair, a planted non-negative weight vector with ~40%
zeros (the paper's video weights have 35 of 64 at zero), labels by logistic sampling of the planted
score difference. Reports the time of :func:`fit_exact` (target < 3 s) and of :func:`fit_sgd` (a
real Lightning run), and how far each lands from the other and from the planted weights.
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings
from pathlib import Path

import numpy as np
import pytorch_lightning  # noqa: F401  (imported first so the log level below sticks)
import torch
from rich.console import Console
from rich.table import Table

from vrexp.checklist import Checklist
from vrexp.configs.tasks import SGDSettings
from vrexp.modules.weights import fit_sgd
from vrexp.reward import LinearReward, fit_exact, pair_differences

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=44_000)
    parser.add_argument("--checklist", default="visionreward_video")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--max-epochs", type=int, default=100)
    parser.add_argument("--tol", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="pytorch_lightning")

    checklist = Checklist.from_yaml(ROOT / "conf" / "dimensions" / f"{args.checklist}.yaml")
    rng = np.random.default_rng(args.seed)
    n_features = sum(q.kind != "presence" for q in checklist.questions)
    planted = rng.uniform(0.0, 0.3, n_features) * (rng.random(n_features) > 0.4)
    reward = LinearReward(checklist, planted)
    yes_rate = rng.uniform(0.2, 0.8, len(checklist.questions))  # questions differ in base rate
    a = (rng.random((args.pairs, len(checklist.questions))) < yes_rate).astype(np.float64)
    b = (rng.random((args.pairs, len(checklist.questions))) < yes_rate).astype(np.float64)
    logit = (reward.score(a) - reward.score(b)).numpy()
    labels = np.where(rng.random(args.pairs) < 1.0 / (1.0 + np.exp(-logit)), 1, -1)
    dx, y, _ = pair_differences(reward, a, b, labels)

    start = time.perf_counter()
    exact = fit_exact(dx, y)
    exact_s = time.perf_counter() - start
    start = time.perf_counter()
    sgd = fit_sgd(
        dx,
        y,
        SGDSettings(
            lr=args.lr, batch_size=args.batch_size, max_epochs=args.max_epochs, tol=args.tol
        ),
        seed=args.seed,
    )
    sgd_s = time.perf_counter() - start

    table = Table(
        title=(
            f"Non-negative weight fitting: {len(y):,} pairs x {n_features} questions "
            f"({checklist.name}), CPU threads={torch.get_num_threads()}"
        )
    )
    for column in ("measurement", "value", "target"):
        table.add_column(column, justify="left" if column == "measurement" else "right")
    table.add_row("fit_exact (L-BFGS-B), s", f"{exact_s:.3f}", "< 3")
    table.add_row(
        f"fit_sgd (Algorithm 1, lr={args.lr}, batch={args.batch_size}, <= {args.max_epochs} "
        f"epochs, tol={args.tol}), s",
        f"{sgd_s:.2f}",
        "",
    )
    table.add_row("max |w_sgd - w_exact|", f"{np.abs(sgd - exact).max():.4f}", "< 0.05")
    table.add_row("max |w_exact - w_planted|", f"{np.abs(exact - planted).max():.4f}", "")
    table.add_row(
        "zero weights: planted / exact / sgd",
        f"{(planted == 0).sum()} / {(exact == 0).sum()} / {(sgd == 0).sum()}",
        "",
    )
    Console().print(table)


if __name__ == "__main__":
    main()
