"""Prompt lists for sampling and evaluating generators: a user's file, or the SynthWorld grammar."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vrexp.data.items import ItemsError, as_text, read_table
from vrexp.data.synthworld.grammar import sample_spec
from vrexp.data.synthworld.world import MAX_COUNT


def synthworld_prompts(
    num_prompts: int, seed: int, media: str, face_rate: float = 0.4
) -> list[str]:
    rng = np.random.default_rng(seed)
    return [
        sample_spec(rng, MAX_COUNT[media], bool(rng.random() < face_rate)).text
        for _ in range(num_prompts)
    ]


def read_prompts(path: str | Path) -> list[str]:
    """One prompt per line of a .txt file, or the ``prompt`` column of a csv/jsonl/parquet file
    (every prompt is text, ``123`` too; a file without prompts is an error naming it)."""
    path = Path(path)
    if path.suffix == ".txt":
        if not path.is_file():
            raise ItemsError(f"prompts file not found: {path}")
        prompts = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    else:
        prompts = [_prompt(row, path, where) for where, row in read_table(path, ("prompt",))]
    if not prompts:
        raise ItemsError(f"prompts file {path} holds no prompts")
    return prompts


def _prompt(row: dict[str, Any], path: Path, where: str) -> str:
    prompt = as_text(row.get("prompt"))
    if not isinstance(prompt, str) or not prompt.strip():
        raise ItemsError(f"{path} {where}: 'prompt' must be non-empty text, got {prompt!r}")
    return prompt


def prompts_from(source: Any, media: str) -> list[str]:
    """The prompts a :class:`~vrexp.configs.PromptSource` describes."""
    if source.file:
        return read_prompts(source.file)
    return synthworld_prompts(source.num_prompts, source.seed, media)
