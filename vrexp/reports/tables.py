"""Write a list of result rows as ``<name>.md``, ``<name>.csv`` and ``<name>.png``.

Rows are flat dicts. A plot is either grouped bars (one group per ``x`` value, one bar per
``series`` value) or lines over a numeric ``x``; ``<metric>_low`` / ``<metric>_high`` columns,
when present, become error bars (the 95% bootstrap intervals of the evaluation).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt

from vrexp.data.atomic import atomic_write


@dataclass
class PlotSpec:
    kind: str = "bar"  # bar | line
    x: str = "method"
    series: str | None = None  # one bar colour or one line per value of this column
    metrics: list[str] = field(default_factory=lambda: ["tau_star", "diff"])
    log_x: bool = False


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def format_markdown(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    columns = list(columns or _columns(rows))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(k for r in rows for k in r))


def write_table(
    rows: Sequence[dict[str, Any]],
    out_dir: str | Path,
    name: str,
    *,
    title: str = "",
    plot: PlotSpec | None = None,
) -> dict[str, Path]:
    """Write the table files; returns their paths by kind (md, csv, png)."""
    out_dir = Path(out_dir)
    columns = _columns(rows)
    paths = {"md": out_dir / f"{name}.md", "csv": out_dir / f"{name}.csv"}
    heading = f"# {title}\n\n" if title else ""
    atomic_write(paths["md"], lambda p: p.write_text(heading + format_markdown(rows, columns)))

    def write_csv(tmp: Path) -> None:
        with tmp.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)

    atomic_write(paths["csv"], write_csv)
    if plot is not None and rows:
        paths["png"] = out_dir / f"{name}.png"
        _plot(rows, plot, title or name, paths["png"])
    return paths


def _plot(rows: Sequence[dict[str, Any]], spec: PlotSpec, title: str, path: Path) -> None:
    metrics = [m for m in spec.metrics if any(m in r for r in rows)]
    fig, axes = plt.subplots(1, max(len(metrics), 1), figsize=(5 * max(len(metrics), 1), 3.6))
    axes = [axes] if len(metrics) <= 1 else list(axes)
    series = list(dict.fromkeys(r.get(spec.series) for r in rows)) if spec.series else [None]
    xs = list(dict.fromkeys(r.get(spec.x) for r in rows))
    for ax, metric in zip(axes, metrics, strict=False):
        for s_index, s in enumerate(series):
            chosen = [r for r in rows if spec.series is None or r.get(spec.series) == s]
            values = [_float(r.get(metric)) for r in chosen]
            low = [_float(r.get(f"{metric}_low", v)) for r, v in zip(chosen, values, strict=True)]
            high = [_float(r.get(f"{metric}_high", v)) for r, v in zip(chosen, values, strict=True)]
            err = [
                [max(v - lo, 0) for v, lo in zip(values, low, strict=True)],
                [max(hi - v, 0) for v, hi in zip(values, high, strict=True)],
            ]
            label = None if s is None else str(s)
            if spec.kind == "line":
                x = [_float(r.get(spec.x)) for r in chosen]
                ax.errorbar(x, values, yerr=err, marker="o", capsize=3, label=label)
            else:
                width = 0.8 / len(series)
                pos = [
                    xs.index(r.get(spec.x)) + (s_index - (len(series) - 1) / 2) * width
                    for r in chosen
                ]
                ax.bar(pos, values, width=width, yerr=err, capsize=3, label=label)
        if spec.kind == "line":
            if spec.log_x:
                ax.set_xscale("log")
        else:
            ax.set_xticks(range(len(xs)), [str(x) for x in xs], rotation=20, ha="right")
        ax.set_xlabel(spec.x)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        if spec.series:
            ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=110))
    plt.close(fig)


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
