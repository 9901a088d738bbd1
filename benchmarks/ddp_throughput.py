"""train_checklist throughput on 1 process against 2 DDP processes (CPU, gloo), same global batch.

    python benchmarks/ddp_throughput.py [--steps 40] [--warmup 4] [--global-batch 8] [--world 2]

Each setting runs ``python run.py task=train_checklist debug=smoke`` for ``--steps`` optimizer
steps with :class:`StepTimer` among the stage's callbacks: it times each training step (forward,
backward, the gradient all-reduce and the optimiser step; loading the batch, validation and
checkpoints excluded) after the first ``--warmup``, on rank zero. Start-up (imports, the other
rank's launch) is left out, which on a shared machine varies by tens of seconds. One process takes
``task.batch_size=GLOBAL``, with its default threads and with one thread (Lightning's DDP gives
each rank cores / processes threads); ``trainer=ddp_cpu`` takes ``GLOBAL / world`` per rank.
Results go to ``outputs/benchmarks/ddp_throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]


class StepTimer(pl.Callback):
    """Seconds of each training step after ``warmup``, written by rank zero to ``out`` (JSON)."""

    def __init__(self, out: str, warmup: int) -> None:
        self.out, self.warmup = Path(out), warmup
        self.seconds: list[float] = []
        self._start = 0.0

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if trainer.global_step > self.warmup:
            self.seconds.append(time.perf_counter() - self._start)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            self.out.write_text(json.dumps(self.seconds))


def run(root: Path, name: str, args: argparse.Namespace, *overrides: str, threads: int | None):
    """Per-step seconds of one ``run.py`` training run (``threads``: its OMP_NUM_THREADS)."""
    out = root / f"{name}.json"
    timer = (
        f"{{_target_: benchmarks.ddp_throughput.StepTimer, out: '{out}', warmup: {args.warmup}}}"
    )
    command = [
        sys.executable,
        str(ROOT / "run.py"),
        "task=train_checklist",
        "debug=smoke",
        "logger=none",
        "trainer.enable_progress_bar=false",
        f"task.max_steps={args.steps}",
        "task.max_epochs=1000",
        f"+callbacks.every_stage.step_timer={timer}",
        f"paths.root_dir={root}",
        f"paths.data_dir={root}/data",
        f"hydra.run.dir={root}/{name}",
        *overrides,
    ]
    env = dict(os.environ)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    subprocess.run(command, check=True, capture_output=True, cwd=ROOT, env=env)
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--global-batch", type=int, default=8)
    parser.add_argument("--world", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "outputs/benchmarks/ddp_throughput.json")
    args = parser.parse_args()
    if args.global_batch % args.world:
        parser.error("--global-batch must be a multiple of --world")
    one = ("trainer=cpu", f"task.batch_size={args.global_batch}")
    settings = {
        "1 process, default threads": (one, None),
        "1 process, 1 thread": (one, 1),
        f"{args.world} processes (ddp_cpu)": (
            (
                "trainer=ddp_cpu",
                f"trainer.devices={args.world}",
                f"task.batch_size={args.global_batch // args.world}",
            ),
            None,
        ),
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for index, (name, (overrides, threads)) in enumerate(settings.items()):
            seconds = run(root, f"setting{index}", args, *overrides, threads=threads)
            per_step = sorted(seconds)[len(seconds) // 2]  # the median: robust to a busy moment
            rows.append(
                {
                    "setting": name,
                    "global_batch": args.global_batch,
                    "timed_steps": len(seconds),
                    "median_step_s": per_step,
                    "steps_per_s": 1 / per_step,
                    "items_per_s": args.global_batch / per_step,
                }
            )
    table = Table(title=f"train_checklist, smoke sizes, global batch {args.global_batch}")
    for column in ("setting", "timed steps", "median step s", "steps/s", "items/s"):
        table.add_column(column, justify="left" if column == "setting" else "right")
    for r in rows:
        table.add_row(
            r["setting"],
            str(r["timed_steps"]),
            f"{r['median_step_s']:.3f}",
            f"{r['steps_per_s']:.2f}",
            f"{r['items_per_s']:.1f}",
        )
    Console().print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
