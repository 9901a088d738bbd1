"""Checklist SFT data: (media, question, yes/no) examples from a SynthWorld split, packed per item.

Labels are the pixel oracle's levels turned into answers for the *configured* checklist, so an
ablated or reworded SynthWorld checklist trains on the same split. Items are split by prompt into
train / val / test. Each training epoch draws a balanced subset per question (as many yes as no,
docs/method.md §5) and yields each item once with all of its drawn questions, so one media forward
serves all of them; with ``prompt_swaps`` an item's alignment questions are also asked under other
training prompts (:class:`PromptSwaps`), and with ``colour_questions`` it is asked about its
objects' colour (:class:`ColourQuestions`). Media are read as the model sees them (``frames``, the
backbone's sampling: a video's picked frames only). With a ``processor`` (the backbone's
:meth:`~ChecklistBackbone.process`), each item is also run through the model's processor. What is
read and processed is kept for later epochs in one :class:`~vrexp.data.item_cache.ItemCache` of
the data module, bounded by ``cache_mib``, so memory does not grow with the dataset. Under DDP each
rank yields its interleaved share of every pass (docs/distributed.md §1), with a weight-0 filler
where the items do not split evenly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from vrexp.checklist import Checklist, SubDimension
from vrexp.configs import FrameSampling
from vrexp.configs.dataset import PartitionConfig
from vrexp.configs.training import ItemCacheSettings
from vrexp.data.item_cache import ItemCache
from vrexp.data.resumable import ResumableData, seeded_generator
from vrexp.data.synthworld.counterfactual import colour_questions, draw_variant, prompt_variants
from vrexp.data.synthworld.split import column_levels, read_items
from vrexp.media import Clip, load_for_model
from vrexp.ranks import rank_slice

log = logging.getLogger(__name__)

ALIGNMENT_KEY = "alignment"  # the SynthWorld factor whose answers depend on the prompt

Processor = Callable[[Sequence[np.ndarray | Clip]], dict[str, torch.Tensor]]
# Questions drawn for a training item beyond its checklist's: texts, checklist columns, labels.
Drawn = tuple[list[str], np.ndarray, np.ndarray]


@dataclass
class ChecklistExamples:
    """Items of one split part with their prompts, media and per-question labels."""

    item_ids: np.ndarray  # [N]
    prompts: list[str]
    media_paths: list[Path]
    labels: np.ndarray  # [N, Q] in {0, 1}
    applicable: np.ndarray  # [N, Q] bool; False where a presence answer masks the question
    frames: FrameSampling  # the backbone's: which frames of a video are read
    # Keyed by item id, so the parts of one split share it; the default keeps nothing.
    cache: ItemCache = field(default_factory=lambda: ItemCache(0))
    # The object count and colour the oracle saw per item (SynthWorld splits since format 3):
    # what counterfactual prompts are labelled with (vrexp/data/synthworld/counterfactual.py).
    seen_counts: np.ndarray | None = None
    seen_colors: list[str | None] | None = None

    def __len__(self) -> int:
        return len(self.item_ids)

    def media(self, index: int) -> np.ndarray | Clip:
        return self.cache.get(
            ("media", int(self.item_ids[index])),
            lambda: load_for_model(self.media_paths[index], self.frames),
        )

    def processed(self, index: int, processor: Processor) -> dict[str, torch.Tensor]:
        """``processor`` output of one item (kept in the cache while it has room)."""
        return self.cache.get(
            ("processed", int(self.item_ids[index])), lambda: processor([self.media(index)])
        )

    def subset(self, index: np.ndarray, cache: ItemCache | None = None) -> Self:
        """The items at ``index``, as the same kind of examples, with ``cache`` (None: this one's)."""
        return type(self)(
            self.item_ids[index],
            [self.prompts[i] for i in index],
            [self.media_paths[i] for i in index],
            self.labels[index],
            self.applicable[index],
            self.frames,
            self.cache if cache is None else cache,
            None if self.seen_counts is None else self.seen_counts[index],
            None if self.seen_colors is None else [self.seen_colors[i] for i in index],
        )


def load_examples(
    split_dir: str | Path, checklist: Checklist, frames: FrameSampling
) -> ChecklistExamples:
    split_dir = Path(split_dir)
    items = read_items(split_dir)
    labels = checklist.answers_from_levels(column_levels(items, checklist, "oracle"))
    seen = "oracle.count" in items.column_names and "oracle.color" in items.column_names
    return ChecklistExamples(
        item_ids=items.column("item_id").to_numpy(),
        prompts=items.column("prompt").to_pylist(),
        media_paths=[split_dir / p for p in items.column("media_path").to_pylist()],
        labels=labels,
        applicable=checklist.applicable(labels),
        frames=frames,
        seen_counts=items.column("oracle.count").to_numpy() if seen else None,
        seen_colors=items.column("oracle.color").to_pylist() if seen else None,
    )


def split_by_prompt(prompts: list[str], partition: PartitionConfig) -> dict[str, np.ndarray]:
    """Row indices of train / val / test; all items of one prompt text land in the same part."""
    groups: dict[str, list[int]] = {}
    for row, prompt in enumerate(prompts):
        groups.setdefault(prompt, []).append(row)
    order = np.random.default_rng(partition.seed).permutation(len(groups))
    names = list(groups)
    n_val = round(partition.val_fraction * len(names))
    n_test = round(partition.test_fraction * len(names))
    parts = {
        "val": order[:n_val],
        "test": order[n_val : n_val + n_test],
        "train": order[n_val + n_test :],
    }
    return {
        part: np.array(sorted(r for g in chosen for r in groups[names[g]]), dtype=np.int64)
        for part, chosen in parts.items()
    }


def balanced_selection(
    labels: np.ndarray, applicable: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """[N, Q] bool: per question, equally many yes and no examples (all of a class that is alone)."""
    chosen = np.zeros(labels.shape, dtype=bool)
    for q in range(labels.shape[1]):
        yes = np.flatnonzero(applicable[:, q] & (labels[:, q] == 1))
        no = np.flatnonzero(applicable[:, q] & (labels[:, q] == 0))
        k = min(len(yes), len(no))
        for rows in (yes, no):
            take = rows if k == 0 else rng.choice(rows, size=k, replace=False)
            chosen[take, q] = True
    return chosen


class PackedChecklistDataset(IterableDataset):
    """Yields one example per item: its media and the questions drawn for it this epoch."""

    def __init__(
        self,
        examples: ChecklistExamples,
        checklist: Checklist,
        *,
        balanced: bool,
        shuffle: bool,
        seed: int,
        questions_per_item: int | None = None,
        processor: Processor | None = None,
        prompt_swaps: int = 0,
        colour_questions: bool = False,
    ) -> None:
        self.examples, self.checklist = examples, checklist
        self.balanced, self.shuffle, self.seed = balanced, shuffle, seed
        self.questions_per_item = questions_per_item
        self.processor = processor
        self.swaps = PromptSwaps.of(examples, checklist, prompt_swaps)
        self.colours = ColourQuestions.of(examples, checklist, colour_questions)
        self.epoch = 0  # the pass counter: pass e draws from (seed, e)
        self._skip = 0

    def skip_items(self, count: int) -> None:
        """Leave out the next pass's first ``count`` items (a resumed run has trained on them);
        their draws are still made, so the rest of the pass is unchanged."""
        self._skip = count

    def __iter__(self) -> Iterator[dict[str, Any]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        skip, self._skip = self._skip, 0
        ex = self.examples
        chosen = (
            balanced_selection(ex.labels, ex.applicable, rng) if self.balanced else ex.applicable
        )
        rows = np.flatnonzero(chosen.any(axis=1))
        if self.shuffle:
            rows = rng.permutation(rows)
        # Under DDP each rank takes its interleaved share of the (same) epoch order, so the ranks'
        # batches together are the single process's global batches; the draws are made for every
        # row on every rank, so they do not depend on the rank.
        share, fillers = rank_slice(len(rows))
        mine = set(share)
        position = 0
        last: dict[str, Any] | None = None
        for index, row in enumerate(rows):
            questions = np.flatnonzero(chosen[row])
            if self.questions_per_item and len(questions) > self.questions_per_item:
                # More items per step for the same suffix compute: the vision tower sees more media.
                questions = np.sort(rng.choice(questions, self.questions_per_item, replace=False))
            extra = [s.draw(int(row), rng) for s in (self.swaps, self.colours) if s is not None]
            if index not in mine:
                continue
            position += 1
            if position <= skip:
                continue
            last = self._example(int(row), questions, weight=1.0, extra=extra)
            yield last
        for _ in range(fillers):  # keeps the ranks' step counts equal; weight 0: never trained on
            filler = (
                last
                if last is not None
                else self._example(int(rows[0]), np.flatnonzero(chosen[rows[0]]), 1.0)
            )
            yield {**filler, "weight": 0.0}

    def _example(
        self,
        row: int,
        questions: np.ndarray,
        weight: float,
        extra: Sequence[Drawn] = (),
    ) -> dict[str, Any]:
        ex = self.examples
        texts = [
            self.checklist.questions[q].render(ex.prompts[row], item=int(ex.item_ids[row]))
            for q in questions
        ]
        labels = ex.labels[row, questions]
        for more_texts, more_columns, more_labels in extra:
            texts += more_texts
            questions = np.concatenate([questions, more_columns])
            labels = np.concatenate([labels, more_labels])
        example = {
            "row": row,
            "media": ex.media(row),
            "questions": texts,
            "question_index": questions,
            "labels": labels,
            "weight": weight,
        }
        if self.processor is not None:
            example["processed"] = ex.processed(row, self.processor)
        return example

    def __len__(self) -> int:
        """Items this rank yields in a pass (fillers included; balanced draws may yield fewer)."""
        share, fillers = rank_slice(int(self.examples.applicable.any(axis=1).sum()))
        return len(share) + fillers


class PromptSwaps:
    """Counterfactual alignment questions for training items (``task.prompt_swaps``).

    Per item and pass, ``per_item`` draws of another prompt (the item's own with its count and/or
    colour changed, from this part's prompt texts only), each asking every alignment question
    under that prompt, labelled from the count and colour the oracle saw
    (vrexp/data/synthworld/counterfactual.py). The alignment level is drawn uniformly first, so
    matches and mismatches are equally common.
    """

    @classmethod
    def of(cls, examples: ChecklistExamples, checklist: Checklist, per_item: int) -> Self | None:
        """The swaps, or None when ``per_item`` is 0 or the checklist asks nothing that depends
        on the prompt (an ablation without Alignment)."""
        if not per_item:
            return None
        alignment = alignment_sub_dimensions(checklist)
        if not alignment:
            log.info("task.prompt_swaps: checklist %r has no alignment questions", checklist.name)
            return None
        return cls(examples, checklist, alignment, per_item)

    def __init__(
        self,
        examples: ChecklistExamples,
        checklist: Checklist,
        alignment: Sequence[SubDimension],
        per_item: int,
    ) -> None:
        """``alignment``: the checklist's sub-dimensions whose questions depend on the prompt."""
        if examples.seen_counts is None or examples.seen_colors is None:
            raise ValueError(
                f"task.prompt_swaps={per_item} needs the count and colour the oracle saw per item "
                "(SynthWorld splits of format 3: oracle.count, oracle.color); re-render the split "
                "with task=make_data, or set task.prompt_swaps=0"
            )
        self.per_item = per_item
        self.questions = [(checklist.column(q.id), q) for sub in alignment for q in sub.questions]
        allowed = set(examples.prompts)
        self.variants = [
            prompt_variants(prompt, int(count), color, allowed)
            for prompt, count, color in zip(
                examples.prompts, examples.seen_counts, examples.seen_colors, strict=True
            )
        ]
        self.item_ids = examples.item_ids

    def draw(self, row: int, rng: np.random.Generator) -> Drawn:
        """Question texts, checklist columns and labels of ``row``'s counterfactual questions."""
        texts, columns, labels = [], [], []
        for _ in range(self.per_item):
            prompt, level = draw_variant(self.variants[row], rng)
            for column, question in self.questions:
                texts.append(question.render(prompt, item=int(self.item_ids[row])))
                columns.append(column)
                labels.append(float(level <= question.at_least))
        return texts, np.array(columns, dtype=np.int64), np.array(labels, dtype=np.float32)


class ColourQuestions:
    """Direct colour questions for training items (``task.colour_questions``).

    Per item and pass, "Are the objects in the image <colour>?" ("in the video" for a video
    checklist) about the colour the oracle saw (yes) and another (no)
    (:func:`~vrexp.data.synthworld.counterfactual.colour_questions`). They train as the
    checklist's first alignment question, whose loss weight applies; an item whose objects the
    oracle saw in no colour is asked none.
    """

    @classmethod
    def of(cls, examples: ChecklistExamples, checklist: Checklist, enabled: bool) -> Self | None:
        """The questions, or None when off or the checklist has no alignment questions."""
        if not enabled:
            return None
        alignment = alignment_sub_dimensions(checklist)
        if not alignment:
            log.info(
                "task.colour_questions: checklist %r has no alignment questions", checklist.name
            )
            return None
        return cls(examples, checklist.column(alignment[0].questions[0].id), checklist.media)

    def __init__(self, examples: ChecklistExamples, column: int, media: str) -> None:
        if examples.seen_colors is None:
            raise ValueError(
                "task.colour_questions=true needs the colour the oracle saw per item (SynthWorld "
                "splits of format 3: oracle.color); re-render the split with task=make_data, or "
                "set task.colour_questions=false"
            )
        self.colours, self.column, self.media = examples.seen_colors, column, media

    def draw(self, row: int, rng: np.random.Generator) -> Drawn:
        """Question texts, checklist columns and labels of ``row``'s colour questions."""
        seen = self.colours[row]
        asked = colour_questions(seen, rng, self.media) if seen is not None else []
        return (
            [text for text, _ in asked],
            np.full(len(asked), self.column, dtype=np.int64),
            np.array([label for _, label in asked], dtype=np.float32),
        )


def alignment_sub_dimensions(checklist: Checklist) -> list[SubDimension]:
    """The checklist's sub-dimensions whose questions depend on the prompt."""
    return [sub for sub in checklist.sub_dimensions if sub.key == ALIGNMENT_KEY]


def collate_packed(examples: list[dict[str, Any]]) -> dict[str, Any]:
    counts = [len(e["questions"]) for e in examples]
    batch = {
        "rows": torch.tensor([e["row"] for e in examples]),
        "media": [e["media"] for e in examples],
        "questions": [e["questions"] for e in examples],
        "item": torch.arange(len(examples)).repeat_interleave(torch.tensor(counts)),
        "question_index": torch.from_numpy(np.concatenate([e["question_index"] for e in examples])),
        "labels": torch.from_numpy(
            np.concatenate([e["labels"] for e in examples]).astype(np.float32)
        ),
        # Per question: 1, or 0 for a rank's filler item (read, never trained on or scored).
        "weights": torch.tensor([e.get("weight", 1.0) for e in examples]).repeat_interleave(
            torch.tensor(counts)
        ),
    }
    if "processed" in examples[0]:
        # Processor outputs carry items along their first axis (ChecklistBackbone.process).
        batch["processed"] = {
            key: torch.cat([e["processed"][key] for e in examples])
            for key in examples[0]["processed"]
        }
    return batch


class ChecklistDataModule(ResumableData):
    def __init__(
        self,
        split_dir: str | Path,
        checklist: Checklist,
        *,
        partition: PartitionConfig,
        frames: FrameSampling,
        batch_size: int,
        balanced: bool = True,
        questions_per_item: int | None = None,
        processor: Processor | None = None,
        seed: int = 0,
        cache_mib: float | None = ItemCacheSettings.cache_mib,
        prompt_swaps: int = 0,
        colour_questions: bool = False,
    ) -> None:
        """Items of ``split_dir`` in the parts of ``partition``, read as a backbone with sampling
        ``frames`` sees them; ``seed`` orders the draws; at most ``cache_mib`` MiB of read media
        and processor outputs are kept between epochs, for all parts together (None: no bound)."""
        super().__init__()
        self.cache = ItemCache.of_mib(cache_mib)
        self.questions_per_item = questions_per_item
        self.prompt_swaps = prompt_swaps
        self.colour_questions = colour_questions
        self.processor = processor
        self.split_dir, self.checklist = Path(split_dir), checklist
        self.batch_size, self.balanced, self.seed = batch_size, balanced, seed
        self.partition, self.frames = partition, frames
        self.parts: dict[str, ChecklistExamples] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.parts:
            return
        examples = load_examples(self.split_dir, self.checklist, self.frames)
        rows = split_by_prompt(examples.prompts, self.partition)
        self.parts = {name: examples.subset(index, self.cache) for name, index in rows.items()}

    def _loader(self, part: str, train: bool) -> DataLoader:
        """The training loader resumes mid-epoch (:mod:`vrexp.data.resumable`)."""
        dataset = PackedChecklistDataset(
            self.parts[part],
            self.checklist,
            balanced=train and self.balanced,
            shuffle=train,
            seed=self.seed,
            questions_per_item=self.questions_per_item if train else None,
            processor=self.processor,
            prompt_swaps=self.prompt_swaps if train else 0,
            colour_questions=self.colour_questions and train,
        )
        if train:
            return self.resumable_loader(
                dataset,
                batch_size=self.batch_size,
                collate_fn=collate_packed,
                generator=seeded_generator(self.seed),
            )
        return DataLoader(dataset, batch_size=self.batch_size, collate_fn=collate_packed)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)

    def teardown(self, stage: str) -> None:
        log.info("item cache after %s: %s", getattr(stage, "value", stage), self.cache.summary())
