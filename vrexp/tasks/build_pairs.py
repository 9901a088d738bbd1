"""Stage ``build_pairs``: DPO pairs among the scored candidates, chosen by the ``dpo`` variant.

Writes ``pairs.parquet`` (prompt, winner and loser candidates and files, total gap, whether the
winner dominates on every dimension, whether the SynthWorld oracle agrees) and
``statistics.json``: PAPER.md Table 5's dominating / non-dominating counts among the pairs that the
total-score rule alone would pick at the same threshold, and the same counts for the kept pairs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from omegaconf import DictConfig
from pytorch_lightning.loggers import Logger
from rich.console import Console

from vrexp.data.atomic import atomic_write
from vrexp.preference import dominance_statistics, select_pairs
from vrexp.tasks.sample import read_samples
from vrexp.tracking import stage_logger

GRANULARITY_COLUMNS = {
    "dimension": "dimensions",
    "sub_dimension": "sub_dimensions",
    "question": "questions",
}


def score_tensor(table: pa.Table, column: str) -> torch.Tensor:
    """[P, K, D] scores from candidate rows sorted by (prompt, candidate)."""
    prompts = table.column("prompt_id").to_numpy()
    counts = np.bincount(np.unique(prompts, return_inverse=True)[1])
    if counts.min() != counts.max():
        raise ValueError(
            f"every prompt needs the same number of candidates; found {counts.min()} to {counts.max()}"
        )
    values = np.asarray(table.column(column).to_pylist(), dtype=np.float64)
    return torch.from_numpy(values.reshape(len(counts), counts[0], -1))


def choose_pairs(table: pa.Table, dpo: Any) -> tuple[pa.Table, dict[str, Any]]:
    """The kept pairs as a table, and their statistics."""
    dims = score_tensor(table, "dimensions")
    scores = score_tensor(table, GRANULARITY_COLUMNS[dpo.granularity])
    rows = select_pairs(scores, dpo.rule, dpo.threshold).numpy()
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
        "rule": dpo.rule,
        "granularity": dpo.granularity,
        "threshold": dpo.threshold,
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


def build_pairs(cfg: DictConfig, logger: Logger | None = None) -> dict[str, Any]:
    task, dpo = cfg.task, cfg.dpo
    table, _ = read_samples(task.samples)
    pairs, stats = choose_pairs(table, dpo)
    out_dir = Path(task.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / "pairs.parquet", lambda p: pq.write_table(pairs, p))
    atomic_write(out_dir / "statistics.json", lambda p: p.write_text(json.dumps(stats, indent=2)))
    with stage_logger(cfg, logger) as logger:
        if logger is not None:
            logger.log_metrics(
                {
                    f"pairs/{k}": v
                    for k, v in stats.items()
                    if isinstance(v, int | float) and not isinstance(v, bool)
                }
            )
    Console().print(
        f"{dpo.name}: {stats['pairs']} pairs kept of {stats['qualifying_pairs']} qualifying "
        f"({stats['pairs_dominating']} dominating); the total rule alone picks "
        f"{stats['total_rule']['total_rule_pairs']} of which "
        f"{stats['total_rule']['non_dominating']} do not dominate; written to {out_dir}"
    )
    return stats


def read_pairs_rows(folder: str | Path) -> list[dict[str, Any]]:
    path = Path(folder) / "pairs.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; run `python run.py task=build_pairs` first")
    rows = pq.read_table(path).to_pylist()
    if not rows:
        raise ValueError(f"{path} holds no pairs; lower dpo.threshold or sample more candidates")
    return rows
