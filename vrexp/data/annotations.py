"""Reading checklist annotations back: the long parquet that ``annotate`` writes, as answer matrices.

``annotate`` stores one row per (item, question). The weighting and evaluation stages need an
[items, questions] P(yes) matrix in a checklist's flat question order, for a given list of items;
this module owns that conversion, the answers of both items of preference pairs, and their errors
(a missing item or question is named).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from vrexp.checklist import Checklist
from vrexp.data.parts import read_parts

if TYPE_CHECKING:
    from vrexp.data.pairs import PreferencePairs


class AnnotationsError(ValueError):
    """Annotations that are absent, or that do not cover the requested items or questions."""


def read_annotations(out_dir: str | Path) -> pa.Table:
    """All annotation rows of an ``annotate`` output folder, by (item, question); a folder that
    holds an item twice, or fewer items than its job had, is an error."""
    table = read_parts(out_dir, "item_id", ("item_id", "question_id"), error=AnnotationsError)
    if table is None:
        raise AnnotationsError(
            f"{out_dir} has no annotation parts; run `python run.py task=annotate` first"
        )
    return table


def answer_matrix(
    table: pa.Table, checklist: Checklist, item_ids: Sequence[int] | np.ndarray
) -> np.ndarray:
    """[len(item_ids), Q] P(yes) of ``checklist``'s questions (flat order) for ``item_ids``.

    Questions are matched by id, so a checklist with dimensions left out (``drop``) reads its
    columns from annotations made with the full checklist.
    """
    items = table.column("item_id").to_numpy()
    questions = table.column("question_id").to_numpy()
    p_yes = table.column("p_yes").to_numpy().astype(np.float64)
    item_ids = np.asarray(item_ids, dtype=np.int64)
    wanted_q = np.array([q.id for q in checklist.questions], dtype=np.int64)

    item_index = {int(i): n for n, i in enumerate(item_ids)}
    q_index = {int(q): n for n, q in enumerate(wanted_q)}
    rows = np.array([item_index.get(int(i), -1) for i in items])
    cols = np.array([q_index.get(int(q), -1) for q in questions])
    keep = (rows >= 0) & (cols >= 0)
    out = np.full((len(item_ids), len(wanted_q)), np.nan)
    out[rows[keep], cols[keep]] = p_yes[keep]
    if np.isnan(out).any():
        r, c = np.argwhere(np.isnan(out))[0]
        raise AnnotationsError(
            f"annotations have no answer for item {item_ids[r]} to question "
            f"{checklist.questions[c].id} ({checklist.questions[c].text!r}); were they made with "
            f"checklist {checklist.name!r} over this dataset, and did any file fail to load "
            "(skipped.json)?"
        )
    return out


def pair_answers(
    table: pa.Table, checklist: Checklist, pairs: PreferencePairs, hard: bool
) -> tuple[np.ndarray, np.ndarray]:
    """([P, Q], [P, Q]) annotated answers of the A and B items of ``pairs`` (``hard``: thresholded
    at 0.5, as the official code does)."""
    ids = pairs.item_ids
    answers = answer_matrix(table, checklist, ids)
    if hard:
        answers = (answers > 0.5).astype(np.float64)
    index = np.searchsorted(ids, pairs.item_a), np.searchsorted(ids, pairs.item_b)
    return answers[index[0]], answers[index[1]]
