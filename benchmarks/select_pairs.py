"""MPO pair selection: the vectorised ``select_pairs`` against a brute-force Python loop, in one process.

    python benchmarks/select_pairs.py [--prompts 22000] [--candidates 8] [--dims 9] [--loop-prompts 1000]

Random dimension scores at the paper's video scale (22k prompts; 8 candidates as for images, 9
video dimensions). The loop runs on the first ``--loop-prompts`` prompts only and is scaled
linearly to the whole set (it is linear in prompts); both must select the same rows there.
Target: the vectorised selection under 1 s.
"""

from __future__ import annotations

import argparse
import time

import torch
from rich.console import Console
from rich.table import Table

from vrexp.preference import select_pairs


def brute_force(scores: list, threshold: float) -> list[tuple[int, int, int]]:
    rows = []
    for p, candidates in enumerate(scores):
        for i, win in enumerate(candidates):
            for j, lose in enumerate(candidates):
                gap = sum(win) - sum(lose)
                if (
                    gap > 0
                    and gap >= threshold
                    and all(a >= b for a, b in zip(win, lose, strict=True))
                ):
                    rows.append((p, i, j))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=22_000)
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--dims", type=int, default=9)
    parser.add_argument("--loop-prompts", type=int, default=1_000)
    parser.add_argument("--threshold", type=float, default=0.6)
    args = parser.parse_args()
    torch.manual_seed(0)
    # Quantised like sums of hard-answer contributions, so ties on a dimension occur.
    scores = torch.randint(0, 6, (args.prompts, args.candidates, args.dims)).double() / 4

    select_pairs(scores[:10], "mpo", args.threshold)  # warm-up
    times = []
    for _ in range(5):
        start = time.perf_counter()
        rows = select_pairs(scores, "mpo", args.threshold)
        times.append(time.perf_counter() - start)
    fast = sorted(times)[len(times) // 2]

    subset = scores[: args.loop_prompts].tolist()
    start = time.perf_counter()
    expected = brute_force(subset, args.threshold)
    loop = (time.perf_counter() - start) * args.prompts / args.loop_prompts
    got = [tuple(r) for r in rows[rows[:, 0] < args.loop_prompts].tolist()]
    if got != expected:
        raise SystemExit("select_pairs and the brute-force loop disagree")

    table = Table(title=f"select_pairs on {args.prompts} x {args.candidates} x {args.dims}")
    for column in ("method", "seconds", "pairs"):
        table.add_column(column, justify="right" if column != "method" else "left")
    table.add_row("select_pairs (vectorised, median of 5)", f"{fast:.3f}", str(len(rows)))
    table.add_row(f"brute-force loop (scaled from {args.loop_prompts})", f"{loop:.1f}", "")
    console = Console()
    console.print(table)
    console.print(f"speed-up {loop / fast:.0f}x; target < 1 s: {'met' if fast < 1 else 'NOT met'}")


if __name__ == "__main__":
    main()
