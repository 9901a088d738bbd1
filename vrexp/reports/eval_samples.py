"""An evaluation's judged samples, ``eval_samples.parquet``: one row per generator and sample.

Columns: ``generator``, the sample's row (:data:`ROW_COLUMNS`: prompt index, sample index,
prompt, noise seed; every generator of one evaluation has the same rows), ``reward`` and
``reward/<dimension>``, and on SynthWorld ``oracle_utility`` and ``oracle/<factor>``. Two
evaluations with the same rows and base (the jobs of one sweep) can be compared after the fact
(:func:`check_same_rows`, :func:`vrexp.metrics.generators.head_to_head`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vrexp.data.atomic import atomic_write
from vrexp.metrics.generators import (
    DIMENSION_PREFIX,
    FACTOR_PREFIX,
    REWARD,
    UTILITY,
    JudgedSamples,
)

EVAL_DIR = "eval"  # an evaluation's folder in its run folder, unless task.out_dir says otherwise
EVAL_SAMPLES_FILE = "eval_samples.parquet"  # in an evaluation's folder
ROW_COLUMNS = ("prompt_index", "sample", "prompt", "seed")  # what makes two rows the same sample


def write_eval_samples(
    out_dir: str | Path,
    rows: dict[str, list[Any]],
    generators: dict[str, JudgedSamples],
) -> Path:
    """``eval_samples.parquet``: one row per generator and sample, the evaluation's ``rows``
    (:data:`ROW_COLUMNS`) repeated for each generator, beside its scores (written atomically)."""
    columns: dict[str, list[Any]] = {"generator": []}
    columns |= {k: [] for k in ROW_COLUMNS}
    count = len(rows["prompt_index"])
    for name, judged in generators.items():
        if len(judged.total) != count:
            raise ValueError(
                f"generator {name!r} has {len(judged.total)} judged samples for {count} rows"
            )
        columns["generator"] += [name] * count
        for key in ROW_COLUMNS:
            columns[key] += list(rows[key])
        for key, values in judged.columns().items():
            columns.setdefault(key, []).extend(np.asarray(values, dtype=np.float64).tolist())
    table = pa.table(columns)
    return atomic_write(Path(out_dir) / EVAL_SAMPLES_FILE, lambda p: pq.write_table(table, p))


def read_eval_samples(path: str | Path) -> tuple[dict[str, list[Any]], dict[str, JudgedSamples]]:
    """An evaluation's ``eval_samples.parquet``: its rows (every generator's must be the same) and
    each generator's :class:`JudgedSamples`, in the file's order."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no evaluation samples at {path}")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as err:
        raise ValueError(f"{path} is not a readable parquet file: {err}") from err
    missing = {"generator", REWARD, *ROW_COLUMNS} - set(table.column_names)
    if missing:
        raise ValueError(f"{path} is not an evaluation's samples file: no {sorted(missing)}")
    generator = np.asarray(table.column("generator").to_pylist(), dtype=object)
    rows: dict[str, list[Any]] | None = None
    generators = {}
    for name in dict.fromkeys(generator.tolist()):
        part = table.filter(pa.array(generator == name))
        mine = {k: part.column(k).to_pylist() for k in ROW_COLUMNS}
        if rows is None:
            rows = mine
        elif mine != rows:
            raise ValueError(f"{path}: generator {name!r} was not sampled on the same rows")

        def columns(prefix: str, part: pa.Table = part) -> dict[str, np.ndarray]:
            return {
                k.removeprefix(prefix): part.column(k).to_numpy().astype(np.float64)
                for k in part.column_names
                if k.startswith(prefix)
            }

        generators[name] = JudgedSamples(
            total=part.column(REWARD).to_numpy().astype(np.float64),
            dimensions=columns(DIMENSION_PREFIX),
            utility=(
                part.column(UTILITY).to_numpy().astype(np.float64)
                if UTILITY in part.column_names
                else None
            ),
            qualities=columns(FACTOR_PREFIX) or None,
        )
    return rows or {k: [] for k in ROW_COLUMNS}, generators


def check_same_rows(
    what: str, rows: dict[str, list[Any]], others: dict[str, list[Any]], other_what: str
) -> None:
    """Refuse to compare two evaluations that did not sample the same prompts with the same
    noise: their samples are not paired."""
    for key in ROW_COLUMNS:
        if list(rows[key]) != list(others[key]):
            raise ValueError(
                f"{what} and {other_what} were not evaluated on the same prompts and noise "
                f"(their {key!r} columns differ); a head-to-head needs paired samples"
            )


def groups_of(rows: dict[str, list[Any]]) -> np.ndarray:
    """The bootstrap's resampling units: one group per prompt."""
    return np.asarray(rows["prompt_index"])
