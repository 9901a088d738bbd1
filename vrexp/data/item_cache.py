"""A byte-bounded cache of what a training dataset reads and computes per item, between epochs.

A training stage visits every item once per epoch and, with a cache, reads each file and runs the
model's processor on it only once. Keeping every item makes memory grow with the dataset; an
:class:`ItemCache` keeps at most ``max_bytes`` (the settings' ``cache_mib``) and, once full,
admits nothing more: it keeps the items it met first. Each epoch visits the items in a fresh random
order, so a fraction ``bound / dataset`` of the reads hit, the best a cache of that size can do on
such an order. An LRU would do worse: it evicts an item read early in one epoch before it comes
back in the next (about ``(bound / dataset)² / 2`` of the reads hit).

Values are what the datasets cache: arrays, tensors, clips, and dicts or sequences of them; their
size is their element bytes (the Python objects around them are not counted).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import numpy as np
import torch

from vrexp.media import Clip

T = TypeVar("T")
MIB = 2**20


def nbytes(value: Any) -> int:
    """The element bytes of an array, tensor or clip, or of a dict, list or tuple of them."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, Clip):
        return value.frames.nbytes + value.timestamps.nbytes
    if isinstance(value, dict):
        return sum(nbytes(v) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(nbytes(v) for v in value)
    raise TypeError(f"cannot size a {type(value).__name__} for the item cache")


class ItemCache:
    """Values by key, at most ``max_bytes`` of them (None: no bound); a full cache admits no more."""

    def __init__(self, max_bytes: int | None) -> None:
        if max_bytes is not None and max_bytes < 0:
            raise ValueError(f"an item cache's bound must be >= 0 bytes, got {max_bytes}")
        self.max_bytes = max_bytes
        self.nbytes = 0
        self.hits = self.misses = 0
        self._values: dict[Hashable, Any] = {}

    @classmethod
    def of_mib(cls, mib: float | None) -> ItemCache:
        return cls(None if mib is None else int(mib * MIB))

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._values

    def summary(self) -> str:
        """What the cache holds and how often it served a read, in words."""
        bound = "no bound" if self.max_bytes is None else f"{self.max_bytes / MIB:,.1f} MiB"
        reads = self.hits + self.misses
        served = f"{self.hits / reads:.0%} of {reads:,} reads" if reads else "no reads"
        return f"{len(self):,} entries, {self.nbytes / MIB:,.1f} MiB of {bound}; served {served}"

    def get(self, key: Hashable, make: Callable[[], T]) -> T:
        """The value kept under ``key``, or ``make()``, kept if it fits in what is left."""
        if key in self._values:
            self.hits += 1
            return self._values[key]
        self.misses += 1
        value = make()
        size = nbytes(value)
        if self.max_bytes is None or self.nbytes + size <= self.max_bytes:
            self._values[key] = value
            self.nbytes += size
        return value
