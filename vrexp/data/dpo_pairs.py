"""The DPO pairs folder that ``build_pairs`` writes, and how pairs are chosen into it.

``pairs.parquet`` holds one row per kept pair: prompt, winner and loser candidates and files, the
total-score gap, whether the winner dominates on every dimension and, on SynthWorld, whether the
oracle agrees. ``statistics.json`` holds the paper's Table 5 counts: dominating / non-dominating
pairs among those the total-score rule alone would pick at the same threshold, and among the kept.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vrexp.configs.choices import Granularity, PairRule
from vrexp.data.atomic import atomic_write
from vrexp.data.samples import SCORE_COLUMNS, score_tensor
from vrexp.preference import dominance_statistics, select_pairs

PAIRS_FILE = "pairs.parquet"
STATISTICS_FILE = "statistics.json"


def choose_pairs(table: pa.Table, dpo: Any) -> tuple[pa.Table, dict[str, Any]]:
    """The kept pairs as a table, and their statistics."""
    granularity = Granularity.of(dpo.granularity, "dpo.granularity")
    rule = PairRule.of(dpo.rule, "dpo.rule")
    dims = score_tensor(table, "dimensions")
    scores = score_tensor(table, SCORE_COLUMNS[granularity])
    rows = select_pairs(scores, rule, dpo.threshold, dpo.epsilon).numpy()
    qualifying = len(rows)
    if dpo.num_pairs is not None and len(rows) > dpo.num_pairs:
        keep = np.random.default_rng(dpo.seed).choice(len(rows), dpo.num_pairs, replace=False)
        rows = rows[np.sort(keep)]
    p, w, loser = rows.T if len(rows) else (np.zeros(0, int),) * 3
    num_candidates = dims.shape[1]
    winner_row, loser_row = p * num_candidates + w, p * num_candidates + loser
    dominating = (dims[p, w] >= dims[p, loser]).all(-1).numpy()
    totals = table.column("total").to_numpy()
    prompts = table.column("prompt").to_pylist()
    paths = table.column("media_path").to_pylist()
    columns = {
        "prompt_id": pa.array(table.column("prompt_id").to_numpy()[winner_row]),
        "prompt": pa.array([prompts[i] for i in winner_row], pa.string()),
        "winner": pa.array(w, pa.int32()),
        "loser": pa.array(loser, pa.int32()),
        "winner_path": pa.array([paths[i] for i in winner_row], pa.string()),
        "loser_path": pa.array([paths[i] for i in loser_row], pa.string()),
        "total_gap": pa.array(totals[winner_row] - totals[loser_row]),
        "dominating": pa.array(dominating),
    }
    stats: dict[str, Any] = {
        "dpo": dpo.name,
        "rule": str(dpo.rule),
        "granularity": str(dpo.granularity),
        "threshold": dpo.threshold,
        "epsilon": dpo.epsilon,
        "prompts": int(dims.shape[0]),
        "candidates": int(num_candidates),
        "qualifying_pairs": qualifying,
        "pairs": len(rows),
        "pairs_dominating": int(dominating.sum()),
        "pairs_non_dominating": int((~dominating).sum()),
        "prompts_with_pairs": len(set(p.tolist())),
        "total_rule": dominance_statistics(dims, dpo.threshold),
        "mean_total_gap": float(np.mean(columns["total_gap"])) if len(rows) else float("nan"),
    }
    if "oracle_utility" in table.column_names:
        utility = table.column("oracle_utility").to_numpy()
        agrees = utility[winner_row] > utility[loser_row]
        columns["oracle_agrees"] = pa.array(agrees)
        # How often the oracle "human" also prefers the winner: the pairs' label precision.
        stats["oracle_agreement"] = float(agrees.mean()) if len(rows) else float("nan")
    return pa.table(columns), stats


def write_pairs(out_dir: str | Path, pairs: pa.Table, stats: dict[str, Any]) -> Path:
    """Write ``pairs.parquet`` and ``statistics.json`` atomically into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / PAIRS_FILE, lambda p: pq.write_table(pairs, p))
    atomic_write(out_dir / STATISTICS_FILE, lambda p: p.write_text(json.dumps(stats, indent=2)))
    return out_dir


def read_pairs_rows(folder: str | Path) -> list[dict[str, Any]]:
    path = Path(folder) / PAIRS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; run `python run.py task=build_pairs` first")
    rows = pq.read_table(path).to_pylist()
    if not rows:
        raise ValueError(f"{path} holds no pairs; lower dpo.threshold or sample more candidates")
    return rows
