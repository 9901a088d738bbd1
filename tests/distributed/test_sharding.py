"""Shard-aware loaders and metrics under a real 2-process gloo group (docs/distributed.md §3).

Each case runs the same code in one process and in two ranks of ``torch.distributed`` (spawned
processes, gloo, a file rendezvous) and compares: every item is seen once per epoch across the
ranks and none twice, the ranks' shares of each global batch are the single process's batch, the
ranks take the same number of steps (fillers, weight 0, where the items do not split evenly), and
``PerQuestionAccuracy`` synced across ranks equals the single-process accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, Dataset

from tests.conftest import CONF
from vrexp.checklist import Checklist
from vrexp.configs import FrameSampling
from vrexp.data.checklist_data import ChecklistExamples, PackedChecklistDataset, collate_packed
from vrexp.data.item_cache import ItemCache
from vrexp.data.resumable import ResumableSampler, item_weight
from vrexp.metrics import PerQuestionAccuracy
from vrexp.ranks import rank_slice

WORLD = 2


def checklist() -> Checklist:
    from omegaconf import OmegaConf

    node = OmegaConf.load(CONF / "dimensions" / "synthworld_image.yaml")
    return Checklist.from_config({k: v for k, v in node.items() if k != "defaults"})


def examples(count: int, seed: int = 0) -> ChecklistExamples:
    """``count`` items with random labels and in-memory media (no files are read)."""
    questions = len(checklist().questions)
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, (count, questions))
    found = ChecklistExamples(
        item_ids=np.arange(count) + 100,
        prompts=[f"prompt {i}" for i in range(count)],
        media_paths=[Path(f"{i}.png") for i in range(count)],
        labels=labels,
        applicable=np.ones((count, questions), dtype=bool),
        frames=FrameSampling(),
        cache=ItemCache(None),
    )
    for i in range(count):  # media in the cache: no file is read
        found.cache.get(("media", int(found.item_ids[i])), lambda: np.zeros((4, 4, 3), np.uint8))
    return found


def packed_batches(count: int, batch_size: int, epochs: int, shuffle: bool) -> list[list[dict]]:
    """Per epoch, the batches this process draws: rows, weights and question indices."""
    dataset = PackedChecklistDataset(
        examples(count),
        checklist(),
        balanced=shuffle,
        shuffle=shuffle,
        seed=3,
        questions_per_item=4 if shuffle else None,
    )
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate_packed)
    out = []
    for _ in range(epochs):
        batches = []
        for b in loader:
            items = []
            for k, row in enumerate(b["rows"].tolist()):
                mine = b["item"] == k
                weight = float(b["weights"][mine][0])
                items.append([row, weight, b["question_index"][mine].tolist()])
            batches.append(items)
        out.append(batches)
    return out


class Indices(Dataset):
    """Item ``i`` is ``(i, weight)``, the weight a vrexp dataset gives it (0 for a filler)."""

    def __init__(self, count: int) -> None:
        self.count = count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[int, float]:
        return int(index), item_weight(index)


def sampler_batches(count: int, batch_size: int, drop_last: bool) -> list[list[list]]:
    """The training sampler's batches over two epochs: (index, weight) per item."""
    sampler = ResumableSampler(
        Indices(count),
        generator=torch.Generator().manual_seed(5),
        batch_size=batch_size,
        drop_last=drop_last,
    )
    loader = DataLoader(
        Indices(count),
        batch_size=batch_size,
        sampler=sampler,
        drop_last=drop_last,
        collate_fn=lambda b: b,
    )
    epochs = []
    for _ in range(2):
        seen = []
        for batch in loader:
            seen.append([list(item) for item in batch])
        assert len(seen) == len(loader)
        epochs.append(seen)
    return epochs


def metric_state(count: int) -> list[float]:
    """PerQuestionAccuracy over this rank's share of ``count`` fixed answers, computed (synced)."""
    rng = np.random.default_rng(11)
    p_yes = torch.from_numpy(rng.random(count)).float()
    target = torch.from_numpy(rng.integers(0, 2, count)).float()
    question = torch.from_numpy(rng.integers(0, 6, count))
    share, _ = rank_slice(count)
    rows = torch.tensor(list(share), dtype=torch.long)
    metric = PerQuestionAccuracy(7)
    metric.update(p_yes[rows], target[rows], question[rows])
    return [float(v) for v in metric.compute()]


# Each case with its per-rank batch size: one process takes the global batch (WORLD times it).
CASES = {
    "packed_train": lambda scale: packed_batches(23, 3 * scale, 2, shuffle=True),
    "packed_eval": lambda scale: packed_batches(9, 2 * scale, 1, shuffle=False),
    "sampler": lambda scale: sampler_batches(21, 4 * scale, drop_last=False),
    "sampler_drop_last": lambda scale: sampler_batches(21, 4 * scale, drop_last=True),
    "metric": lambda scale: metric_state(37),
}


def _rank_main(rank: int, folder: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=WORLD
    )
    try:
        results = {name: case(1) for name, case in CASES.items()}
        Path(folder, f"rank{rank}.json").write_text(json.dumps(results))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> tuple[dict, list[dict]]:
    """(the single-process results, each rank's results) of every case."""
    folder = tmp_path_factory.mktemp("gloo")
    # fork: the children reuse the imported modules (a spawned child re-imports Lightning).
    mp.start_processes(
        _rank_main, args=(str(folder),), nprocs=WORLD, join=True, start_method="fork"
    )
    single = json.loads(json.dumps({name: case(WORLD) for name, case in CASES.items()}))
    return single, [json.loads((folder / f"rank{r}.json").read_text()) for r in range(WORLD)]


def merged(per_rank: list[list], epoch: int, step: int, key: str) -> list:
    return [v for r in per_rank for v in r[epoch][step][key]]


@pytest.mark.parametrize("case", ["packed_train", "packed_eval"])
def test_packed_items_are_split_across_ranks_once_each(ranks, case, one_thread):
    single, per_rank = ranks
    ones, shards = single[case], [r[case] for r in per_rank]
    for epoch, batches in enumerate(ones):
        # Same step count on every rank (fillers where the items do not split evenly).
        assert {len(s[epoch]) for s in shards} == {len(batches)}
        kept = []
        for step, batch in enumerate(batches):
            mine = [(row, q) for s in shards for row, w, q in s[epoch][step] if w > 0]
            # The ranks' shares of a global batch are the single process's batch (its items and
            # their drawn questions).
            assert sorted(mine) == sorted((row, q) for row, _, q in batch)
            kept += [row for row, _ in mine]
        # Every item of the epoch once, none twice.
        assert len(kept) == len(set(kept)) == len({row for b in batches for row, _, _ in b})
    if case == "packed_eval":  # 9 items on 2 ranks: rank 1 reads one filler, never scored
        assert [w for s in shards for b in s[0] for _, w, _ in b].count(0.0) == 1


@pytest.mark.parametrize("case", ["sampler", "sampler_drop_last"])
def test_the_training_sampler_shards_each_pass(ranks, case, one_thread):
    single, per_rank = ranks
    ones, shards = single[case], [r[case] for r in per_rank]
    for epoch, batches in enumerate(ones):
        assert {len(s[epoch]) for s in shards} == {len(batches)}
        for step, batch in enumerate(batches):
            mine = [i for s in shards for i, weight in s[epoch][step] if weight > 0]
            assert sorted(mine) == sorted(i for i, _ in batch)
        seen = [i for s in shards for b in s[epoch] for i, weight in b if weight > 0]
        assert len(seen) == len(set(seen))
        # 21 items in global batches of 8: one process drops the last 5 with drop_last, so do
        # the ranks.
        assert len(seen) == (16 if case == "sampler_drop_last" else 21)
    # Two epochs draw two orders, on every rank alike.
    assert ones[0] != ones[1]


def test_accuracy_synced_across_ranks_equals_one_process(ranks, one_thread):
    single, per_rank = ranks
    assert per_rank[0]["metric"] == per_rank[1]["metric"]
    np.testing.assert_array_equal(per_rank[0]["metric"], single["metric"])


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 200), st.integers(1, 16))
def test_rank_slices_partition_the_items_with_equal_lengths(count, world):
    slices = [rank_slice(count, rank, world) for rank in range(world)]
    positions = [p for share, _ in slices for p in share]
    assert sorted(positions) == list(range(count))  # each item once, none twice
    assert {len(share) + fillers for share, fillers in slices} == {-(-count // world)}
    assert all(fillers in (0, 1) for _, fillers in slices)
    assert rank_slice(count) == (range(count), 0)  # no process group: one process takes all
