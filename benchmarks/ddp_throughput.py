"""train_checklist throughput on 1 process against 2 DDP processes (CPU, gloo), same global batch.

    python benchmarks/ddp_throughput.py [--steps 4 24] [--global-batch 8] [--world 2]

Each setting runs ``python run.py task=train_checklist debug=smoke`` twice, with ``task.max_steps``
set to the two ``--steps`` budgets (epochs unbounded), and times the whole command. The time per
step is the difference of the two wall times over the extra steps, so start-up (imports, the
SynthWorld split, building the model, the other ranks' start) cancels. The split is rendered once,
before the timed runs. One process takes ``task.batch_size=GLOBAL``; ``trainer=ddp_cpu`` takes
``GLOBAL / world`` per rank. Results go to ``outputs/benchmarks/ddp_throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]


def run(root: Path, name: str, steps: int, *overrides: str) -> float:
    """Wall seconds of one ``run.py`` training run."""
    command = [
        sys.executable,
        str(ROOT / "run.py"),
        "task=train_checklist",
        "debug=smoke",
        "logger=none",
        "trainer.enable_progress_bar=false",
        f"task.max_steps={steps}",
        "task.max_epochs=1000",
        f"paths.root_dir={root}",
        f"paths.data_dir={root}/data",
        f"hydra.run.dir={root}/{name}-{steps}",
        *overrides,
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs=2, default=[4, 24])
    parser.add_argument("--global-batch", type=int, default=8)
    parser.add_argument("--world", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "outputs/benchmarks/ddp_throughput.json")
    args = parser.parse_args()
    if args.global_batch % args.world:
        parser.error("--global-batch must be a multiple of --world")
    short, long = sorted(args.steps)
    settings = {
        "1 process": ("trainer=cpu", f"task.batch_size={args.global_batch}"),
        f"{args.world} processes (ddp_cpu)": (
            "trainer=ddp_cpu",
            f"trainer.devices={args.world}",
            f"task.batch_size={args.global_batch // args.world}",
        ),
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run(root, "warmup", 1)  # renders the split once
        for name, overrides in settings.items():
            seconds = {s: run(root, name.split()[0], s, *overrides) for s in (short, long)}
            per_step = (seconds[long] - seconds[short]) / (long - short)
            rows.append(
                {
                    "setting": name,
                    "global_batch": args.global_batch,
                    "wall_s": seconds,
                    "steps_per_s": 1 / per_step,
                    "items_per_s": args.global_batch / per_step,
                }
            )
    table = Table(title=f"train_checklist, smoke sizes, global batch {args.global_batch}")
    for column in ("setting", f"wall s ({short} / {long} steps)", "steps/s", "items/s"):
        table.add_column(column, justify="left" if column == "setting" else "right")
    for r in rows:
        wall = f"{r['wall_s'][short]:.1f} / {r['wall_s'][long]:.1f}"
        table.add_row(r["setting"], wall, f"{r['steps_per_s']:.2f}", f"{r['items_per_s']:.1f}")
    Console().print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
