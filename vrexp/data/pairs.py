"""Human preference pairs of a SynthWorld split, partitioned like the checklist data.

Pairs are split by prompt with the same rule (:func:`split_by_prompt`) and the dataset's
``partition`` as the checklist SFT data, so a test pair's media were never seen by the checklist
model. ``PairDataModule`` feeds the pairwise (Bradley-Terry) baselines, reading media as their
backbone sees them (kept between epochs in a bounded :class:`~vrexp.data.item_cache.ItemCache`);
the linear weighting only needs the item ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vrexp.configs import FrameSampling
from vrexp.configs.dataset import PartitionConfig
from vrexp.configs.training import ItemCacheSettings
from vrexp.data.checklist_data import split_by_prompt
from vrexp.data.item_cache import ItemCache
from vrexp.data.resumable import ResumableData, ResumableSampler, item_weight, seeded_generator
from vrexp.data.synthworld.split import read_items, read_pairs
from vrexp.media import Clip, load_for_model

PARTS = ("train", "val", "test")


class PairBudgetError(ValueError):
    """A pair budget larger than the part it is drawn from."""


def check_pair_budget(num_pairs: int, available: int, key: str = "num_pairs") -> None:
    if not 1 <= num_pairs <= available:
        raise PairBudgetError(
            f"{key}={num_pairs} but the train part has {available} pairs; render more prompts "
            "(dataset.num_prompts) or candidates per prompt (dataset.renders_per_prompt)"
        )


@dataclass
class PreferencePairs:
    """Item-id pairs with a label: +1 when A is preferred, -1 when B is, 0 for a tie."""

    item_a: np.ndarray
    item_b: np.ndarray
    label: np.ndarray

    def __len__(self) -> int:
        return len(self.label)

    def subset(self, index: np.ndarray) -> PreferencePairs:
        return PreferencePairs(self.item_a[index], self.item_b[index], self.label[index])

    def without_ties(self) -> PreferencePairs:
        return self.subset(np.flatnonzero(self.label != 0))

    def sample(self, num_pairs: int | None, seed: int) -> PreferencePairs:
        """``num_pairs`` pairs drawn without replacement (all of them when None)."""
        if num_pairs is None:
            return self
        check_pair_budget(num_pairs, len(self))
        chosen = np.random.default_rng([seed, num_pairs]).choice(
            len(self), num_pairs, replace=False
        )
        return self.subset(np.sort(chosen))

    @property
    def item_ids(self) -> np.ndarray:
        """Every item that occurs in a pair, once, sorted."""
        return np.unique(np.concatenate([self.item_a, self.item_b]))


def pair_parts(split_dir: str | Path, partition: PartitionConfig) -> dict[str, PreferencePairs]:
    """The split's pairs in train / val / test, by the prompt partition of the checklist data."""
    items = read_items(split_dir)
    rows = split_by_prompt(items.column("prompt").to_pylist(), partition)
    item_ids = items.column("item_id").to_numpy()
    part_of = {}
    for name, index in rows.items():
        part_of.update(dict.fromkeys(item_ids[index].tolist(), name))
    pairs = read_pairs(split_dir)
    a, b = pairs.column("item_a").to_numpy(), pairs.column("item_b").to_numpy()
    label = pairs.column("preference").to_numpy().astype(np.int64)
    part = np.array([part_of[int(i)] for i in a])
    return {
        name: PreferencePairs(a[part == name], b[part == name], label[part == name])
        for name in PARTS
    }


def item_records(split_dir: str | Path) -> dict[int, tuple[Path, str]]:
    """item_id -> (media file, prompt) of a split."""
    items = read_items(split_dir)
    return {
        int(i): (Path(split_dir) / p, prompt)
        for i, p, prompt in zip(
            items.column("item_id").to_pylist(),
            items.column("media_path").to_pylist(),
            items.column("prompt").to_pylist(),
            strict=True,
        )
    }


class MediaPairDataset(Dataset):
    """(media and prompt of A and of B, label) for pairs whose label is not a tie; media read as a
    backbone with sampling ``frames`` sees them."""

    def __init__(
        self,
        pairs: PreferencePairs,
        records: dict[int, tuple[Path, str]],
        frames: FrameSampling,
        cache: ItemCache | None = None,
    ) -> None:
        """Media are kept in ``cache`` (keyed by item id) while it has room (None: not kept)."""
        self.pairs, self.records, self.frames = pairs.without_ties(), records, frames
        self.cache = ItemCache(0) if cache is None else cache

    def __len__(self) -> int:
        return len(self.pairs)

    def _media(self, item: int) -> np.ndarray | Clip:
        return self.cache.get(item, lambda: load_for_model(self.records[item][0], self.frames))

    def __getitem__(self, index: int) -> dict[str, Any]:
        a, b = int(self.pairs.item_a[index]), int(self.pairs.item_b[index])
        return {
            "media_a": self._media(a),
            "media_b": self._media(b),
            "prompt_a": self.records[a][1],
            "prompt_b": self.records[b][1],
            "label": self.pairs.label[index],
            "weight": item_weight(index),
        }


def collate_pairs(examples: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "media_a": [e["media_a"] for e in examples],
        "media_b": [e["media_b"] for e in examples],
        "prompt_a": [e["prompt_a"] for e in examples],
        "prompt_b": [e["prompt_b"] for e in examples],
        "label": torch.tensor([float(e["label"]) for e in examples]),
        "weight": torch.tensor([float(e.get("weight", 1.0)) for e in examples]),
    }


class PairDataModule(ResumableData):
    """Train / val loaders of media pairs for the pairwise baselines."""

    def __init__(
        self,
        pairs: dict[str, PreferencePairs],
        records: dict[int, tuple[Path, str]],
        *,
        frames: FrameSampling,
        batch_size: int = 16,
        seed: int = 0,
        cache_mib: float | None = ItemCacheSettings.cache_mib,
    ) -> None:
        """At most ``cache_mib`` MiB of read media are kept between epochs, for both parts."""
        super().__init__()
        self.pairs, self.records, self.frames = pairs, records, frames
        self.batch_size, self.seed = batch_size, seed
        self.cache = ItemCache.of_mib(cache_mib)

    def _loader(self, part: str, shuffle: bool) -> DataLoader:
        dataset = MediaPairDataset(self.pairs[part], self.records, self.frames, self.cache)
        if not shuffle:
            return DataLoader(dataset, batch_size=self.batch_size, collate_fn=collate_pairs)
        # The training loader resumes mid-epoch (vrexp.data.resumable).
        generator = seeded_generator(self.seed)
        return self.resumable_loader(
            dataset,
            batch_size=self.batch_size,
            sampler=ResumableSampler(dataset, generator=generator),
            generator=generator,
            collate_fn=collate_pairs,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)
