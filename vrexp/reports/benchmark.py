"""A reward's result on a benchmark under the benchmark's protocols: the numbers, their bootstrap
intervals and counts, per-dimension accuracy, and the files ``task=benchmark`` writes
(``benchmark.json``, ``benchmark.md``, ``benchmark.csv``, ``benchmark_dimensions.csv``;
docs/benchmarks.md).

The split is read once (:func:`benchmark_layout`: its keys and every label column), then scored
by each score column of a :class:`vrexp.data.benchmarks.scores.KeyScores` (the total, and each
dimension of a reward that has them). Values are those of :mod:`vrexp.metrics.protocols` on the
same arrays :meth:`vrexp.data.benchmarks.Benchmark.protocol_inputs` gives.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vrexp.configs.choices import ModelTies, Protocol
from vrexp.data.atomic import atomic_write
from vrexp.data.benchmarks import Benchmark, BenchmarkError, BenchmarkPair
from vrexp.data.benchmarks.scores import KeyScores
from vrexp.metrics.protocols import (
    PROTOCOLS,
    protocol_interval,
    score_protocol,
    select_pickapic_threshold,
)
from vrexp.reports.tables import format_markdown

__all__ = [
    "CONFIDENCE",
    "EXTRA_PAIR_PROTOCOLS",
    "PICKAPIC_THRESHOLD_SPLIT",
    "BenchmarkLayout",
    "benchmark_layout",
    "benchmark_protocols",
    "evaluate_benchmark",
    "write_benchmark",
]

CONFIDENCE = 0.95
# Reported besides a pair benchmark's official protocols: the paper's tau* and diff.
EXTRA_PAIR_PROTOCOLS = (Protocol.tau_star, Protocol.diff)
# Pick-a-Pic's tie threshold is chosen on this split and applied to the evaluated one.
PICKAPIC_THRESHOLD_SPLIT = "validation_unique"
HUMAN = "label"  # the row name of a benchmark's single label in the per-dimension table


@dataclass
class BenchmarkLayout:
    """A split's keys and human labels, read once: pairs (``key_a``, ``key_b``, ``labels``:
    label name -> one label per pair, the headline label under ``label``) or ranked lists
    (``keys``, ``ranks``, ``groups``, one entry per image)."""

    benchmark: Benchmark
    key_a: list[str] = field(default_factory=list)
    key_b: list[str] = field(default_factory=list)
    labels: dict[str, list[int]] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)
    ranks: list[int] = field(default_factory=list)
    groups: list[int] = field(default_factory=list)

    @property
    def pairs(self) -> bool:
        return self.benchmark.form == "pairs"

    def inputs(
        self, scores: Mapping[str, float], label: str = HUMAN
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The protocols' arrays for one score column; a key without a score is an error
        naming it (and how many more are missing)."""
        needed = [*self.key_a, *self.key_b] if self.pairs else self.keys
        missing = [k for k in dict.fromkeys(needed) if k not in scores]
        if missing:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            raise BenchmarkError(
                f"{self.benchmark.name} {self.benchmark.split}: no score for media "
                f"{missing[0]!r}{more}"
            )
        if self.pairs:
            return (
                np.array([scores[k] for k in self.key_a], dtype=np.float64),
                np.array([scores[k] for k in self.key_b], dtype=np.float64),
                np.array(self.labels[label], dtype=np.int64),
            )
        return (
            np.array([scores[k] for k in self.keys], dtype=np.float64),
            np.array(self.ranks, dtype=np.int64),
            np.array(self.groups, dtype=np.int64),
        )


def benchmark_layout(benchmark: Benchmark) -> BenchmarkLayout:
    """Read the split once (its row errors raise, or are recorded in ``benchmark.skipped``)."""
    layout = BenchmarkLayout(benchmark)
    for item in benchmark:
        if isinstance(item, BenchmarkPair):
            layout.key_a.append(item.key_a)
            layout.key_b.append(item.key_b)
            for name, value in {HUMAN: item.label, **item.labels}.items():
                layout.labels.setdefault(name, []).append(value)
        else:
            layout.keys.extend(item.keys)
            layout.ranks.extend(item.ranks)
            layout.groups.extend([item.group] * len(item.keys))
    return layout


def benchmark_protocols(
    benchmark: Benchmark, requested: Sequence[Protocol | str] | None = None
) -> list[Protocol]:
    """The protocols to report: ``requested`` (each checked against the benchmark's data
    form), or the benchmark's official ones plus, for pairs, :data:`EXTRA_PAIR_PROTOCOLS`."""
    if requested is None:
        chosen = [Protocol(p) for p in benchmark.protocols]
        if benchmark.form == "pairs":
            chosen += [p for p in EXTRA_PAIR_PROTOCOLS if p not in chosen]
        return chosen
    chosen = list(dict.fromkeys(Protocol.of(p, "task.protocols") for p in requested))
    wrong = [str(p) for p in chosen if PROTOCOLS[p].data != benchmark.form]
    if wrong:
        fits = [str(p) for p in Protocol if PROTOCOLS[p].data == benchmark.form]
        raise BenchmarkError(
            f"task.protocols={wrong} score {PROTOCOLS[Protocol(wrong[0])].data}, but "
            f"{benchmark.name} has {benchmark.form}; valid here: {fits}"
        )
    return chosen


def _finite(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _json_ready(value: Any) -> Any:
    """``value`` with every NaN float as None (JSON has no NaN), recursively."""
    if isinstance(value, float):
        return _finite(value)
    if isinstance(value, Mapping):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    return value


def _options(protocol: Protocol, model_ties: ModelTies | None, threshold: float | None) -> dict:
    if protocol is Protocol.diff and model_ties is not None:
        return {"model_ties": model_ties}
    if protocol is Protocol.pickapic:
        return {"threshold": threshold}
    return {}


def evaluate_benchmark(
    layout: BenchmarkLayout,
    scores: KeyScores,
    *,
    protocols: Sequence[Protocol | str] | None = None,
    model_ties: ModelTies | str | None = None,
    threshold_layout: BenchmarkLayout | None = None,
    num_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """The benchmark record of ``scores`` on the split ``layout`` holds (format in
    docs/benchmarks.md). ``model_ties`` is ``diff``'s convention (None: the protocol's default,
    ``drop``); ``threshold_layout`` is the split Pick-a-Pic's threshold is chosen on (needed
    for ``pickapic``; its keys must be scored too)."""
    bench = layout.benchmark
    chosen = benchmark_protocols(bench, protocols)
    ties = None if model_ties is None else ModelTies.of(model_ties, "task.model_ties")
    if Protocol.pickapic in chosen and threshold_layout is None:
        raise BenchmarkError(
            f"protocol pickapic chooses its tie threshold on {PICKAPIC_THRESHOLD_SPLIT}: "
            "it needs that split's layout and scores"
        )
    columns = scores.columns()

    def thresholds(column: Mapping[str, float]) -> Any:
        if Protocol.pickapic not in chosen:
            return None
        return select_pickapic_threshold(*threshold_layout.inputs(column))

    total = layout.inputs(scores.total)
    chosen_threshold = thresholds(scores.total)
    cut = None if chosen_threshold is None else chosen_threshold.threshold
    metrics, intervals, details = {}, {}, {}
    for protocol in chosen:
        options = _options(protocol, ties, cut)
        result = score_protocol(protocol, *total, **options)
        low, high = protocol_interval(
            protocol,
            *total,
            num_resamples=num_resamples,
            confidence=CONFIDENCE,
            seed=seed,
            **options,
        )
        metrics[str(protocol)] = _finite(result.value)
        intervals[str(protocol)] = [_finite(low), _finite(high)]
        details[str(protocol)] = _json_ready(result.to_dict())
    first = details[str(chosen[0])]["counts"]
    counts = {
        "pairs": first["pairs"],
        "human_ties": first["human_ties"],
        "model_ties": first["model_ties"],
        "skipped": len(bench.skipped),
    }
    if not layout.pairs:
        counts["prompts"] = first["prompts"]
        counts["images"] = len(layout.keys)
    # Per dimension: every score column against every label column, official protocols.
    official = [p for p in chosen if str(p) in bench.protocols] or chosen[:1]
    labels = [n for n in layout.labels if n != HUMAN] or [HUMAN]
    dimensions = []
    for name, column in columns.items():
        cut_here = cut if name == "total" else None
        if name != "total" and Protocol.pickapic in official:
            cut_here = thresholds(column).threshold
        for against in labels:
            data = layout.inputs(column, against)
            row = {"score": name, "label": against}
            for protocol in official:
                value = score_protocol(protocol, *data, **_options(protocol, ties, cut_here)).value
                row[str(protocol)] = _finite(value)
            dimensions.append(row)
    record: dict[str, Any] = {
        "benchmark": str(bench.name),
        "split": bench.split,
        "revision": bench.revision,
        "label": bench.label,
        "protocols": [str(p) for p in bench.protocols],
        "metrics": metrics,
        "intervals": intervals,
        "interval": {
            "confidence": CONFIDENCE,
            "num_resamples": num_resamples,
            "seed": seed,
            "unit": {str(p): PROTOCOLS[p].resample for p in chosen},
        },
        "counts": counts,
        "details": details,
        "per_dimension": dimensions,
        "skipped_rows": [
            {"source": s.source, "row": s.row, "reason": s.reason} for s in bench.skipped
        ],
    }
    if Protocol.diff in chosen:
        record["model_ties"] = details[str(Protocol.diff)]["params"]["model_ties"]
    if chosen_threshold is not None:
        record["pickapic"] = {
            "threshold_split": threshold_layout.benchmark.split,
            "threshold": chosen_threshold.threshold,
            "threshold_accuracy": chosen_threshold.accuracy,
            "accuracies": [list(a) for a in chosen_threshold.accuracies],
        }
    return record


def _rows(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name, value in record["metrics"].items():
        low, high = record["intervals"][name]
        params = record["details"][name]["params"]
        rows.append(
            {
                "protocol": name,
                "official": name in record["protocols"],
                "value": math.nan if value is None else value,
                "low": math.nan if low is None else low,
                "high": math.nan if high is None else high,
                "params": " ".join(f"{k}={v}" for k, v in params.items()),
            }
        )
    return rows


def _write_csv(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    columns = list(dict.fromkeys(k for r in rows for k in r))

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)

    atomic_write(path, write)


def sweep_row(record: dict[str, Any], reward: str) -> dict[str, Any]:
    """A benchmark record as one row of a sweep's table: the reward, the benchmark and split,
    each protocol's value and interval (``<protocol>``, ``_low``, ``_high``) and the counts."""
    row: dict[str, Any] = {
        "reward": reward,
        "benchmark": record["benchmark"],
        "split": record["split"],
        "revision": record["revision"],
    }
    for name, value in record["metrics"].items():
        low, high = record["intervals"][name]
        row.update({name: value, f"{name}_low": low, f"{name}_high": high})
    return {**row, **record["counts"]}


def write_benchmark(record: Mapping[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """``benchmark.json``, ``benchmark.md`` (both tables), ``benchmark.csv`` (one row per
    protocol) and ``benchmark_dimensions.csv``, each written atomically; their paths."""
    out_dir = Path(out_dir)
    paths = {
        "json": out_dir / "benchmark.json",
        "md": out_dir / "benchmark.md",
        "csv": out_dir / "benchmark.csv",
        "dimensions_csv": out_dir / "benchmark_dimensions.csv",
    }
    text = json.dumps(record, indent=2, allow_nan=False)
    atomic_write(paths["json"], lambda p: p.write_text(text + "\n"))
    rows = _rows(record)
    counts = ", ".join(f"{k} {v}" for k, v in record["counts"].items())
    label = f", label {record['label']}" if record.get("label") else ""
    dims = [
        {k: (math.nan if v is None else v) for k, v in r.items()} for r in record["per_dimension"]
    ]
    markdown = (
        f"# {record['benchmark']} ({record['split']}{label})\n\n"
        f"Revision {record['revision'] or 'unknown'}; {counts}; "
        f"{int(record['interval']['confidence'] * 100)}% bootstrap intervals "
        f"({record['interval']['num_resamples']} resamples, seed {record['interval']['seed']})."
        f"\n\n{format_markdown(rows)}\n## Per dimension and label\n\n{format_markdown(dims)}"
    )
    atomic_write(paths["md"], lambda p: p.write_text(markdown))
    _write_csv(rows, paths["csv"])
    _write_csv(dims, paths["dimensions_csv"])
    return paths
