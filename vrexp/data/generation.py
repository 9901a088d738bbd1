"""Datasets for generator training: (media, prompt) items to pretrain on, and (winner, loser,
prompt) preference pairs for DPO. Media are read lazily; every read error names its file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vrexp.data.resumable import ResumableData, ResumableSampler, item_weight, seeded_generator
from vrexp.media import load_media
from vrexp.ranks import world_size


def _stack(examples: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in examples[0]:
        values = [e[key] for e in examples]
        out[key] = (
            torch.from_numpy(np.stack(values)) if isinstance(values[0], np.ndarray) else values
        )
    return out


class MediaPromptDataset(Dataset):
    """(media, prompt) from a list of (file, prompt) records."""

    def __init__(self, records: Sequence[tuple[Path, str]]) -> None:
        self.records = list(records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path, prompt = self.records[index]
        return {"media": load_media(path), "prompt": prompt, "weight": item_weight(index)}


class PreferencePairDataset(Dataset):
    """(winner media, loser media, prompt) from rows with ``winner_path``, ``loser_path``, ``prompt``."""

    def __init__(self, rows: Sequence[dict[str, Any]]) -> None:
        self.rows = list(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.rows[index]
        return {
            "winner": load_media(row["winner_path"]),
            "loser": load_media(row["loser_path"]),
            "prompt": row["prompt"],
            "weight": item_weight(index),
        }


class GenerationDataModule(ResumableData):
    """Train (and optional validation) loaders over any of the datasets above; the training
    loader resumes mid-epoch (:mod:`vrexp.data.resumable`)."""

    def __init__(
        self, train: Dataset, val: Dataset | None = None, *, batch_size: int = 32, seed: int = 0
    ) -> None:
        super().__init__()
        self.train, self.val, self.batch_size, self.seed = train, val, batch_size, seed

    def train_dataloader(self) -> DataLoader:
        generator = seeded_generator(self.seed)
        # The tail is dropped when there is more than one global batch (batch_size per rank).
        drop_last = len(self.train) > self.batch_size * world_size()
        sampler = ResumableSampler(
            self.train, generator=generator, batch_size=self.batch_size, drop_last=drop_last
        )
        return self.resumable_loader(
            self.train,
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=drop_last,
            collate_fn=_stack,
            generator=generator,
        )

    def val_dataloader(self) -> DataLoader | list:
        if self.val is None or len(self.val) == 0:
            return []
        return DataLoader(self.val, batch_size=self.batch_size, collate_fn=_stack)
