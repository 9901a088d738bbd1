"""The samples folder that ``sample`` writes: K scored candidates per prompt.

Layout::

    manifest.json           digests of the generator, the reward and the prompts, and the
                            sampling settings (chunk size included) the parts belong to
    scoring.json            names of the dimension / sub-dimension / question score columns
    media/p00012_k3.png     candidate 3 of prompt 12 (.mp4 for videos with task.video_format=mp4)
    part-00000012.parquet   prompt_id, prompt, candidate, noise_seed, media_path, total,
                            dimensions, sub_dimensions, questions (lists), oracle_utility of a
                            chunk of prompts, named by its first prompt

This module owns reading it back: the rows in (prompt, candidate) order and the [P, K, D] score
tensors that pair selection works on.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from vrexp.configs.choices import Granularity
from vrexp.data.parts import read_parts

SCORING_FILE = "scoring.json"
# The score column that holds each granularity's vector.
SCORE_COLUMNS: dict[Granularity, str] = {
    Granularity.dimension: "dimensions",
    Granularity.sub_dimension: "sub_dimensions",
    Granularity.question: "questions",
}


class SamplesError(ValueError):
    """A samples folder that is missing, empty or inconsistent."""


def read_samples(folder: str | Path) -> tuple[pa.Table, dict[str, list[str]]]:
    """All candidate rows of a sample folder (sorted by prompt, candidate; ``media_path``
    absolute) and the score names. A folder that holds a prompt twice, or fewer prompts than its
    job had (an interrupted run), is an error."""
    folder = Path(folder)
    table = read_parts(folder, "prompt_id", ("prompt_id", "candidate"), error=SamplesError)
    if table is None or not (folder / SCORING_FILE).is_file():
        raise SamplesError(
            f"{folder} holds no scored samples; run `python run.py task=sample` first"
        )
    paths = [str(folder / p) for p in table.column("media_path").to_pylist()]
    table = table.set_column(
        table.schema.get_field_index("media_path"), "media_path", pa.array(paths)
    )
    return table, json.loads((folder / SCORING_FILE).read_text())


def score_tensor(table: pa.Table, column: str) -> torch.Tensor:
    """[P, K, D] scores from candidate rows sorted by (prompt, candidate)."""
    prompts = table.column("prompt_id").to_numpy()
    counts = np.bincount(np.unique(prompts, return_inverse=True)[1])
    if counts.min() != counts.max():
        raise SamplesError(
            f"every prompt needs the same number of candidates; found {counts.min()} to {counts.max()}"
        )
    values = np.asarray(table.column(column).to_pylist(), dtype=np.float64)
    return torch.from_numpy(values.reshape(len(counts), counts[0], -1))
