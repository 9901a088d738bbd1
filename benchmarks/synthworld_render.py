"""SynthWorld throughput: rendering alone, rendering + oracle, and the whole `make_data` split.

    python benchmarks/synthworld_render.py [--images 5000] [--videos 500]

Prints wall-clock seconds and items per second on this machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table

import vrexp.configs  # noqa: F401
from vrexp.checklist import Checklist
from vrexp.data.synthworld import make_split, measure, render, sample_plan

CONF = Path(__file__).resolve().parents[1] / "conf"


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--videos", type=int, default=500)
    args = parser.parse_args()
    table = Table(title="SynthWorld throughput (64 px; videos 8 frames)")
    for column in ("what", "items", "seconds", "items/s"):
        table.add_column(column, justify="right" if column != "what" else "left")

    for media, n in (("image", args.images), ("video", args.videos)):
        plans = [sample_plan(np.random.default_rng([0, i]), media, 0.4, 0.5) for i in range(n)]
        pixels: list[np.ndarray] = []
        seconds = timed(
            lambda plans=plans, pixels=pixels: pixels.extend(
                render(p, seed=[0, i]) for i, p in enumerate(plans)
            )
        )
        table.add_row(f"render {media}s", str(n), f"{seconds:.2f}", f"{n / seconds:,.0f}")
        seconds = timed(
            lambda plans=plans, pixels=pixels: [
                measure(x, p.spec) for x, p in zip(pixels, plans, strict=True)
            ]
        )
        table.add_row(f"oracle on {media}s", str(n), f"{seconds:.2f}", f"{n / seconds:,.0f}")
        with (
            tempfile.TemporaryDirectory() as tmp,
            initialize_config_dir(config_dir=str(CONF), version_base="1.3"),
        ):
            cfg = compose(
                config_name="config",
                overrides=[
                    f"dataset=synthworld_{media}",
                    f"dataset.num_prompts={n // 2}",
                    f"paths.root_dir={tmp}",
                    "paths.output_dir=x",
                ],
            )
            dataset, checklist = (
                OmegaConf.to_object(cfg.dataset),
                Checklist.from_config(cfg.dimensions),
            )
            seconds = timed(
                lambda dataset=dataset, checklist=checklist: make_split(dataset, checklist)
            )
        table.add_row(
            f"make_data {media} split (render+oracle+PNG+parquet)",
            str(n),
            f"{seconds:.2f}",
            f"{n / seconds:,.0f}",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
