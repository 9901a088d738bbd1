"""Training loaders that a resumed run continues where the killed one stopped, mid-epoch included.

Lightning restores the model, optimiser, scheduler and loop counters from ``last.ckpt``, but not
where the data order was: a plain ``DataLoader`` restarts its epoch (and its shuffling generator)
from the beginning. :class:`ResumableLoader` records, in the data module's checkpoint state, its
shuffling state at the start of the epoch, its state now, and how many batches it has delivered;
a resumed loader replays the same epoch order and skips the batches already trained on (by index,
without reading their media), so a resumed run sees exactly the batches an uninterrupted one does.

The order of an uninterrupted run is unchanged: :class:`ResumableSampler` is a ``RandomSampler``.
Under DDP it is shard-aware (the trainer keeps it: ``use_distributed_sampler=false``): every rank
draws the same epoch order and takes its interleaved share (:func:`vrexp.ranks.rank_slice`), so the
ranks' batches together are the single process's global batches, each item once; a rank short of
items gets :class:`Filler` indices (weight 0) so that all ranks take the same number of steps.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, RandomSampler

from vrexp.ranks import rank_slice, world_size

__all__ = ["Filler", "ResumableData", "ResumableLoader", "ResumableSampler", "item_weight"]


class Filler(int):
    """An index a rank reads only to keep in step with the others: its item has weight 0."""


def item_weight(index: int) -> float:
    """1, or 0 for a :class:`Filler` index (the weight a dataset gives the item it returns)."""
    return 0.0 if isinstance(index, Filler) else 1.0


class ResumableSampler(RandomSampler):
    """``RandomSampler`` that can leave out the first ``skip`` indices of its next pass, and under
    DDP yields this rank's share of the pass. With ``drop_last`` (and the per-rank
    ``batch_size``) the pass is first cut to whole global batches, as one process drops its tail."""

    skip: int = 0

    def __init__(
        self, data_source: Any, *, batch_size: int = 1, drop_last: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(data_source, **kwargs)
        self.batch_size, self.drop_last = batch_size, drop_last

    def _count(self) -> int:
        count = super().__len__()
        if self.drop_last and world_size() > 1:
            count -= count % (self.batch_size * world_size())
        return count

    def __iter__(self) -> Iterator[int]:
        skip, self.skip = self.skip, 0
        # Exactly one pass's draws from the generator, however far the pass is read (a lazily
        # read RandomSampler draws once more when exhausted), so the next epoch's order does not
        # depend on whether a loop, or which rank, read to the end.
        order = list(itertools.islice(super().__iter__(), self.num_samples))
        if world_size() > 1:
            order = order[: self._count()]
            share, fillers = rank_slice(len(order))
            mine = [order[i] for i in share]
            order = mine + [Filler(mine[-1] if mine else order[0])] * fillers
        return iter(order[skip:])

    def __len__(self) -> int:
        share, fillers = rank_slice(self._count())
        return len(share) + fillers


class ResumableLoader(DataLoader):
    """A training ``DataLoader`` whose position is part of the checkpoint (see the module doc).

    ``resume`` is a state from :meth:`progress` of the killed run's loader. Shuffled loaders take a
    :class:`ResumableSampler` with the loader's ``generator``; an iterable dataset may define
    ``epoch`` (its pass counter) and ``skip_items(n)`` (leave out its next pass's first ``n``
    items).
    """

    def __init__(
        self, dataset: Any, *, resume: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(dataset, **kwargs)
        self.resume = resume
        self._start: dict[str, Any] = {}
        self._delivered = 0
        self._exhausted = False

    def _snapshot(self) -> dict[str, Any]:
        return {
            "generator": None if self.generator is None else self.generator.get_state(),
            "dataset_epoch": getattr(self.dataset, "epoch", None),
        }

    def _restore(self, snapshot: dict[str, Any]) -> None:
        if snapshot.get("generator") is not None and self.generator is not None:
            self.generator.set_state(snapshot["generator"])
        if snapshot.get("dataset_epoch") is not None and hasattr(self.dataset, "epoch"):
            self.dataset.epoch = snapshot["dataset_epoch"]

    # The position travels in the data module's state, which Lightning restores on every resume
    # (a loader's own state only mid-epoch). These two tell Lightning that the loader resumes.
    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        pass

    def progress(self) -> dict[str, Any]:
        """Where this loader is: plain values and tensors only (checkpoints load weights_only)."""
        return {
            "start": self._start,
            "now": self._snapshot(),
            "batches": self._delivered,
            "finished": self._exhausted or self._delivered >= len(self),
        }

    def __iter__(self) -> Iterator[Any]:
        skip = 0
        if self.resume is not None:
            state, self.resume = self.resume, None
            if state["finished"]:
                self._restore(state["now"])  # the next epoch starts from the state it ended in
            else:
                self._restore(state["start"])
                skip = int(state["batches"])
        self._start, self._delivered, self._exhausted = self._snapshot(), skip, False
        batch_size = self.batch_size or 1
        if skip and isinstance(self.sampler, ResumableSampler):
            self.sampler.skip, skip = skip * batch_size, 0
        elif skip and callable(getattr(self.dataset, "skip_items", None)):
            self.dataset.skip_items(skip * batch_size)
            skip = 0
        return self._count(super().__iter__(), skip)

    def _count(self, batches: Iterator[Any], skip: int) -> Iterator[Any]:
        for _ in range(skip):  # no cheaper way for this loader: fetch and drop
            next(batches, None)
        for batch in batches:
            self._delivered += 1
            yield batch
        self._exhausted = True


class ResumableData(pl.LightningDataModule):
    """A data module whose training loader's position is saved in every checkpoint."""

    def __init__(self) -> None:
        super().__init__()
        self._resume: dict[str, Any] | None = None

    def resumable_loader(self, dataset: Any, **kwargs: Any) -> ResumableLoader:
        resume, self._resume = self._resume, None
        return ResumableLoader(dataset, resume=resume, **kwargs)

    def _active_loader(self) -> ResumableLoader | None:
        # The loader Lightning iterates (it may have re-created ours, e.g. for a distributed sampler).
        trainer = getattr(self, "trainer", None)
        loader = trainer.train_dataloader if trainer is not None else None
        return loader if isinstance(loader, ResumableLoader) else None

    def state_dict(self) -> dict[str, Any]:
        loader = self._active_loader()
        return {"train_loader": loader.progress()} if loader is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._resume = state_dict.get("train_loader")


def seeded_generator(seed: int) -> torch.Generator:
    """The generator a training loader shuffles with (and draws its workers' base seed from), so
    iterating it never touches the global RNG that the training step draws noise from."""
    return torch.Generator().manual_seed(seed)
