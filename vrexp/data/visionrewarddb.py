"""VisionRewardDB (``THUDM/VisionRewardDB-Image`` / ``-Video``, also ``zai-org/...``) as training
data: checklist SFT items with per-question yes/no labels, and the video regression pairs.

Read from a local snapshot in its published layout (docs/benchmarks.md §7):

- image: ``data/train-NNNNN-of-NNNNN.parquet`` with ``image`` (the Hugging Face image struct
  ``{bytes, path}``, or raw bytes in an older revision), ``internal_id``, ``prompt``,
  ``annotation`` (a struct of integers, one per sub-dimension; field names contain spaces),
  ``meta_result`` / ``meta_mask``;
- video: ``train/*.parquet`` (as image, with ``video_path`` instead of ``image``) and
  ``regression/*.parquet`` (``internal_id``, ``prompt``, ``standard_answer``, ``video1_path``,
  ``video2_path``); the videos are files under ``media_root`` (default the root), found at the
  path as written, else by file name.

Labels: each annotated option becomes the checklist's option level (:data:`ANNOTATION_FIELDS`)
and :meth:`Checklist.answers_from_levels` applies the threshold rule, so question ``q`` of a
sub-dimension annotated ``v`` in ``[lo, hi]`` answers yes iff ``v >= hi - q.at_least``
(:func:`question_thresholds`). Rows are split into train / val / heldout by a hash of
``internal_id`` (:func:`part_of`). Media stay where they are (:class:`ParquetMedia`,
:class:`FileMedia`): an image is decoded when its item is read, never a whole split.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vrexp.checklist import Checklist
from vrexp.checklist.hierarchy import ABSENT
from vrexp.configs import FrameSampling
from vrexp.configs.choices import DatasetKind, Media, VisionRewardDBName
from vrexp.configs.dataset import PartitionConfig
from vrexp.data.benchmarks.base import (
    BenchmarkError,
    FileMedia,
    MediaRef,
    ParquetMedia,
    RowError,
    Skip,
    check_columns,
    check_revision,
    is_image_bytes,
    is_text,
    iter_parquet_rows,
    media_file,
    missing_media,
    null_media_rows,
    require_dir,
    shards,
)
from vrexp.data.checklist_data import ChecklistDataModule, ChecklistExamples, Processor
from vrexp.data.items import Item
from vrexp.data.pairs import PreferencePairs, item_records, pair_parts
from vrexp.data.synthworld.split import ensure_split, preference_split
from vrexp.media import Clip, load_for_model
from vrexp.resources import dimensions_dir

log = logging.getLogger(__name__)

IMAGE = VisionRewardDBName.visionrewarddb_image
VIDEO = VisionRewardDBName.visionrewarddb_video

# Checklist sub-dimension -> (annotation field, lowest value, highest value); higher is better.
# The ranges are those the published data holds; the sub-dimension names are the official
# checklists' (conf/official/visionreward/*_checklist.csv, conf/dimensions/visionreward_*.yaml).
ANNOTATION_FIELDS: dict[Media, dict[str, tuple[str, int, int]]] = {
    Media.image: {
        "Symmetry": ("symmetry", -1, 1),
        "Object pairing": ("object pairing", -1, 1),
        "Main object": ("main object", -1, 1),
        "Richness": ("richness", -2, 2),
        "Background": ("background", -1, 2),
        "Clarity": ("clarity", -2, 2),
        "Color brightness": ("color brightness", -1, 1),
        "Color aesthetic": ("color aesthetic", -1, 1),
        "Lighting distinction": ("lighting distinction", -1, 2),
        "Lighting aesthetic": ("lighting aesthetic", -1, 2),
        "Detail realism": ("detail realism", -3, 1),
        "Detail refinement": ("detail refinement", -4, 2),
        "Body": ("body", -4, 1),
        "Face": ("face", -3, 2),
        "Hands": ("hands", -4, 1),
        "Emotion": ("emotion", -2, 2),
        "Safety": ("safety", -3, 1),
    },
    Media.video: {
        "Alignment": ("alignment", 1, 5),
        "Composition": ("composition", 1, 3),
        "Focus": ("focus", 1, 3),
        "Camera movement": ("camera movement", 1, 3),
        "Color": ("color", 1, 5),
        "Lighting accurate": ("lighting accurate", 1, 4),
        "Lighting aes": ("lighting aes", 1, 5),
        "Shape at beginning": ("shape at beginning", 0, 3),
        "Shape throughout": ("shape throughout", 0, 4),
        "Object motion dynamic": ("object motion dynamic", 1, 5),
        "Camera motion dynamic": ("camera motion dynamic", 1, 5),
        "Movement smoothness": ("movement smoothness", 0, 4),
        "Movement reality": ("movement reality", 0, 4),
        "Clear": ("clear", 1, 5),
        "Image quality stability": ("image quality stability", 1, 5),
        "Camera stability": ("camera stability", 1, 3),
        "Detail refinement": ("detail refinement", 1, 5),
        "Letters": ("letters", 1, 4),
        "Physics law": ("physics law", 1, 5),
        "Safety": ("safety", 1, 5),
    },
}
# Annotation fields that are read (range-checked) but label no question.
UNUSED_FIELDS: dict[Media, dict[str, tuple[int, int]]] = {
    Media.image: {"unsafe type": (0, 3)},
    Media.video: {"unsafe type": (1, 5)},
}
# Sub-dimensions the annotation does not cover: their questions get no label (not applicable).
# The image alignment item is scored by VQAScore, not annotated.
UNANNOTATED: dict[Media, frozenset[str]] = {
    Media.image: frozenset({"Alignment"}),
    Media.video: frozenset(),
}
# The older VisionRewardDB-Image annotation keys: refused by name (their value ranges are not
# published, so no mapping onto the checklist can be checked).
OLD_IMAGE_KEYS = frozenset(
    {
        "adjective",
        "collocation",
        "place",
        "sharpness",
        "color",
        "color_aes",
        "shadow_degree",
        "shadow_aes",
        "detail_fineness",
        "detail_facticity",
        "body_correctness",
        "face",
        "hand",
        "safe",
        "harm",
    }
)
REGRESSION_ANSWERS = {"video1": 1, "video2": -1, "tie": 0}  # standard_answer -> pair label
HASH_SALT = "vrexp-visionrewarddb-v1"  # changing it reshuffles every part: never do
PARTS = ("train", "val", "heldout")


class VisionRewardDBError(BenchmarkError):
    """A VisionRewardDB snapshot, or a checklist, that cannot be read as published."""


# ----------------------------------------------------------------------------- thresholds


def value_range(media: Media, sub_name: str) -> tuple[str, int, int] | None:
    return ANNOTATION_FIELDS[Media(media)].get(sub_name)


def is_confirmed(sub: Any, lo: int, hi: int) -> bool:
    """True when the field's values are exactly the sub-dimension's options (plus one "not
    present" value below them for a sub-dimension with a presence question): then each value is
    one option. Otherwise the bottom values share the worst option (UNCONFIRMED)."""
    return hi - lo + 1 == sub.num_levels + (1 if sub.presence is not None else 0)


@functools.cache
def official_checklist(media: Media) -> Checklist:
    """The full official checklist of ``media`` (``conf/dimensions/visionreward_<media>.yaml``)."""
    return Checklist.from_yaml(dimensions_dir() / f"visionreward_{Media(media).value}.yaml")


def check_checklist(checklist: Checklist, media: Media) -> None:
    """``checklist`` must be the official VisionReward checklist of ``media`` or a part of it
    (a select set, dropped dimensions): each sub-dimension with the official options, each
    question with the official boundary, so the annotation's options mean what they say."""
    media = Media(media)
    hint = f"use dimensions=visionreward_{media.value}[_select]"
    if str(checklist.media) != media.value:
        raise VisionRewardDBError(
            f"checklist {checklist.name!r} is a {checklist.media} checklist; VisionRewardDB "
            f"{media.value} needs a {media.value} one ({hint})"
        )
    official = {(s.dimension, s.name): s for s in official_checklist(media).sub_dimensions}
    for sub in checklist.sub_dimensions:
        ref = official.get((sub.dimension, sub.name))
        if ref is None or (
            sub.name not in UNANNOTATED[media] and sub.name not in ANNOTATION_FIELDS[media]
        ):
            raise VisionRewardDBError(
                f"checklist {checklist.name!r}: sub-dimension {sub.dimension}/{sub.name} has no "
                f"VisionRewardDB annotation (it is not one of the official checklist's); {hint}"
            )
        bounds = {q.id: q.at_least for q in ref.questions}
        wrong = [q.id for q in sub.questions if bounds.get(q.id, -1) != q.at_least]
        if sub.options != ref.options or wrong:
            raise VisionRewardDBError(
                f"checklist {checklist.name!r}: sub-dimension {sub.name} differs from the "
                f"official one (options {list(sub.options)} vs {list(ref.options)}; questions "
                f"with another boundary or id: {wrong}); the annotation's options would not "
                f"match it; {hint}"
            )


def question_thresholds(checklist: Checklist, media: Media) -> dict[int, tuple[str, int, bool]]:
    """Question id -> (annotation field, threshold, confirmed): the question answers yes iff the
    field's value is at least the threshold. A presence question's threshold is one above the
    field's lowest value ("not present"). ``confirmed`` is False where the field has more values
    than the options (see :func:`is_confirmed`) and for every presence question (the encoding of
    "not present" is not published)."""
    check_checklist(checklist, media)
    out: dict[int, tuple[str, int, bool]] = {}
    for sub in checklist.sub_dimensions:
        found = value_range(media, sub.name)
        if found is None:
            continue
        name, lo, hi = found
        confirmed = is_confirmed(sub, lo, hi)
        for q in sub.questions:
            out[q.id] = (name, hi - q.at_least, confirmed)
        if sub.presence is not None:
            out.setdefault(sub.presence.id, (name, lo + 1, False))
    return out


def levels_of(annotation: dict, checklist: Checklist, media: Media) -> np.ndarray:
    """[S] option levels (0 = best, -1 = absent) of one row's ``annotation``; a value outside its
    field's range raises ``ValueError`` naming the field."""
    levels = np.zeros(len(checklist.sub_dimensions), dtype=np.int64)
    for s, sub in enumerate(checklist.sub_dimensions):
        found = value_range(media, sub.name)
        if found is None:
            continue  # unannotated: the row's labels for it are masked
        name, lo, hi = found
        value = _checked(annotation, name, lo, hi)
        if sub.presence is not None and value == lo:
            levels[s] = ABSENT  # UNCONFIRMED: the lowest value read as "not present"
        else:
            # Values below the worst option's boundary share the worst option (UNCONFIRMED where
            # the field has more values than options; see is_confirmed).
            levels[s] = min(hi - value, sub.num_levels - 1)
    for name, (lo, hi) in UNUSED_FIELDS[Media(media)].items():
        _checked(annotation, name, lo, hi)
    shared: dict[int, list[int]] = {}
    for s, sub in enumerate(checklist.sub_dimensions):
        if sub.presence is not None and value_range(media, sub.name) is not None:
            shared.setdefault(sub.presence.id, []).append(s)
    for subs in shared.values():
        if len({levels[s] == ABSENT for s in subs}) > 1:
            # Image lighting: distinction and aesthetic share "Is there lighting and shadow?".
            said = {
                value_range(media, checklist.sub_dimensions[s].name)[0]: (
                    "absent" if levels[s] == ABSENT else "present"
                )
                for s in subs
            }
            raise ValueError(
                f"annotation fields {sorted(said)} share a presence question but disagree: {said}"
            )
    return levels


def _checked(annotation: dict, name: str, lo: int, hi: int) -> int:
    value = annotation.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ValueError(f"annotation field {name!r} is {value!r}, outside its range {lo}..{hi}")
    return value


# ----------------------------------------------------------------------------- the held-out rule


def hash_unit(internal_id: str) -> float:
    """A number in [0, 1) fixed by ``internal_id`` alone (SHA-256; the same on every machine)."""
    digest = hashlib.sha256(f"{HASH_SALT}:{internal_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def part_of(internal_id: str, heldout_fraction: float, val_fraction: float) -> str:
    """``heldout`` for the first ``heldout_fraction`` of the hash range, ``val`` for the next
    ``val_fraction``, else ``train``."""
    u = hash_unit(internal_id)
    if u < heldout_fraction:
        return "heldout"
    return "val" if u < heldout_fraction + val_fraction else "train"


# ----------------------------------------------------------------------------- the snapshot


def _annotation_fields(media: Media) -> set[str]:
    return {f for f, _, _ in ANNOTATION_FIELDS[media].values()} | set(UNUSED_FIELDS[media])


def _check_annotation_type(file: Path, kind: pa.DataType, media: Media) -> None:
    if not pa.types.is_struct(kind):
        raise VisionRewardDBError(
            f"{file}: column 'annotation' has type {kind}, not a struct of sub-dimension values; "
            "an unknown revision of the dataset?"
        )
    names = {kind.field(i).name for i in range(kind.num_fields)}
    expected = _annotation_fields(media)
    old_only = names & (OLD_IMAGE_KEYS - expected)  # "face" is in both key sets
    if media is Media.image and old_only:
        raise VisionRewardDBError(
            f"{file}: 'annotation' has the older VisionRewardDB-Image keys "
            f"{sorted(old_only)}, which vrexp does not map (their value ranges are "
            "not published); download the current revision, whose keys are "
            f"{sorted(expected)}"
        )
    if names != expected:
        raise VisionRewardDBError(
            f"{file}: 'annotation' fields differ from the published schema: missing "
            f"{sorted(expected - names)}, unknown {sorted(names - expected)}; an unknown "
            "revision of the dataset?"
        )
    for i in range(kind.num_fields):
        if not pa.types.is_integer(kind.field(i).type):
            raise VisionRewardDBError(
                f"{file}: annotation field {kind.field(i).name!r} has type "
                f"{kind.field(i).type}, not an integer"
            )


def _is_id(kind: pa.DataType) -> bool:
    return is_text(kind) or pa.types.is_integer(kind)


def _is_int_list(kind: pa.DataType) -> bool:
    return (pa.types.is_list(kind) or pa.types.is_large_list(kind)) and pa.types.is_integer(
        kind.value_type
    )


def _meta_questions(root: Path) -> int | None:
    """Lines of ``meta_qa_en.txt`` beside the shards (None when the snapshot lacks it)."""
    path = root / "meta_qa_en.txt"
    if not path.is_file():
        return None
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


def train_files(root: Path, media: Media) -> list[Path]:
    name = IMAGE if media is Media.image else VIDEO
    if media is Media.image:
        files = shards(root / "data", "train", str(name))
    else:
        files = sorted((root / "train").glob("*.parquet"))
        if not files:
            raise VisionRewardDBError(f"{name}: no parquet files in {root}/train/")
    columns: dict[str, Any] = {
        "internal_id": _is_id,
        "prompt": is_text,
        "annotation": lambda kind: True,
        "meta_result": _is_int_list,
        "meta_mask": _is_int_list,
    }
    columns["image" if media is Media.image else "video_path"] = (
        is_image_bytes if media is Media.image else is_text
    )
    for file in files:
        schema = pq.read_schema(file)
        check_columns(file, schema, columns)
        _check_annotation_type(file, schema.field("annotation").type, media)
    return files


@dataclass
class ChecklistItems:
    """The rows of a VisionRewardDB ``train`` config with their labels for one checklist.

    ``item_ids`` number the usable rows across the files in order (0, 1, ...); ``part`` is each
    row's part (``train``, ``val``, ``heldout``); ``labels`` / ``applicable`` are [N, Q] in the
    checklist's question order. ``skipped`` lists the rows left out under ``skip_invalid``.
    """

    name: VisionRewardDBName
    revision: str | None
    files: tuple[Path, ...]
    item_ids: np.ndarray
    internal_ids: list[str]
    prompts: list[str]
    media: list[MediaRef]
    part: np.ndarray
    labels: np.ndarray
    applicable: np.ndarray
    skipped: list[Skip] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.item_ids)

    def rows(self, part: str | Sequence[str]) -> np.ndarray:
        parts = (part,) if isinstance(part, str) else tuple(part)
        return np.flatnonzero(np.isin(self.part, parts))


def _media_base(config: Any, root: Path) -> Path:
    return (
        require_dir(config.media_root, f"{config.name} media_root") if config.media_root else root
    )


def _row_errors(
    items: Iterator[Any | RowError], skip_invalid: bool, name: str, skipped: list[Skip]
) -> Iterator[Any]:
    for item in items:
        if isinstance(item, RowError):
            if not skip_invalid:
                raise item
            log.warning("%s: skipped %s row %d: %s", name, item.source, item.row, item.reason)
            skipped.append(Skip(item.source, item.row, item.reason))
            continue
        yield item


def load_checklist_items(config: Any, checklist: Checklist) -> ChecklistItems:
    """Every usable row of the ``train`` config of the snapshot ``config.root`` (a
    :class:`~vrexp.configs.VisionRewardDBConfig`), labelled for ``checklist`` (a VisionReward
    checklist of the same media, select sets and dropped dimensions included). Reads no media."""
    name = VisionRewardDBName(config.name)
    media = Media(config.media)
    check_checklist(checklist, media)
    root = require_dir(config.root, str(name))
    files = train_files(root, media)
    revision = check_revision(root, config.revision)
    base = _media_base(config, root)
    n_meta = _meta_questions(root)
    subs = checklist.sub_dimensions
    unannotated = np.array([value_range(media, s.name) is None for s in subs])
    masked_cols = [
        checklist.column(q.id)
        for s, sub in enumerate(subs)
        if unannotated[s]
        for q in [*sub.questions, *([sub.presence] if sub.presence else [])]
    ]
    unconfirmed = sorted(
        {
            checklist.questions[checklist.column(q)].sub_dimension
            for q, (_, _, ok) in question_thresholds(checklist, media).items()
            if not ok
        }
    )
    log.info(
        "%s: labels of sub-dimensions %s rest on UNCONFIRMED encodings (docs/benchmarks.md §7)",
        name,
        unconfirmed,
    )
    media_column = "image" if media is Media.image else "video_path"
    meta = ["internal_id", "prompt", "annotation", "meta_result", "meta_mask"]
    if media is Media.video:
        meta.append("video_path")

    def rows() -> Iterator[tuple | RowError]:
        nulls: dict[Path, dict[int, str]] = {}
        for file, row, values in iter_parquet_rows(files, meta):
            if media is Media.image:
                if file not in nulls:
                    nulls[file] = null_media_rows(file, ("image",))
                if row in nulls[file]:
                    yield RowError(file, row, "column 'image' holds no image bytes")
                    continue
            internal_id = values["internal_id"]
            if internal_id is None or str(internal_id) == "":
                yield RowError(file, row, "internal_id is empty")
                continue
            annotation = values["annotation"]
            if annotation is None:
                yield RowError(file, row, "annotation is null")
                continue
            try:
                levels = levels_of(annotation, checklist, media)
            except ValueError as err:
                yield RowError(file, row, str(err))
                continue
            result, mask = values["meta_result"], values["meta_mask"]
            lengths = {len(result or []), len(mask or [])}
            if (
                result is None
                or mask is None
                or len(lengths) != 1
                or (n_meta is not None and lengths != {n_meta})
            ):
                want = f"{n_meta} (the lines of meta_qa_en.txt)" if n_meta else "equal"
                yield RowError(
                    file,
                    row,
                    f"meta_result / meta_mask have lengths {len(result or [])} / "
                    f"{len(mask or [])}, expected {want}",
                )
                continue
            if media is Media.image:
                ref: MediaRef = ParquetMedia(file, row, media_column)
            else:
                written = values["video_path"] or ""
                path = media_file(base, written, by_name=True) if written else None
                if path is None:
                    yield RowError(
                        file, row, "video_path: " + missing_media(base, written, by_name=True)
                    )
                    continue
                ref = FileMedia(path)
            yield str(internal_id), values["prompt"] or "", ref, levels

    skipped: list[Skip] = []
    ids, prompts, refs, levels = [], [], [], []
    for internal_id, prompt, ref, row_levels in _row_errors(
        rows(), config.skip_invalid, str(name), skipped
    ):
        ids.append(internal_id)
        prompts.append(prompt)
        refs.append(ref)
        levels.append(row_levels)
    if not ids:
        raise VisionRewardDBError(f"{name}: no usable rows in {root} ({len(skipped)} skipped)")
    level_array = np.stack(levels)
    labels = checklist.answers_from_levels(level_array)
    applicable = checklist.applicable(labels)
    applicable[:, masked_cols] = False
    part = np.array(
        [part_of(i, config.heldout_fraction, config.val_fraction) for i in ids], dtype=object
    )
    return ChecklistItems(
        name=name,
        revision=revision,
        files=tuple(files),
        item_ids=np.arange(len(ids), dtype=np.int64),
        internal_ids=ids,
        prompts=prompts,
        media=refs,
        part=part,
        labels=labels,
        applicable=applicable,
        skipped=skipped,
    )


# ----------------------------------------------------------------------------- checklist SFT


@dataclass
class RefExamples(ChecklistExamples):
    """:class:`ChecklistExamples` whose media are references (an embedded image, a video file),
    decoded each time an item is read, so memory never holds a split's media."""

    def media(self, index: int) -> np.ndarray | Clip:
        ref = self.media_paths[index]
        with ref.as_file() as path:
            return load_for_model(path, self.frames)

    def processed(self, index: int, processor: Processor) -> dict:
        return processor([self.media(index)])


# train_checklist's parts -> VisionRewardDB's: the held-out rows are the test part.
CHECKLIST_PARTS = {"train": "train", "val": "val", "test": "heldout"}


def checklist_parts(
    config: Any, checklist: Checklist, frames: FrameSampling
) -> dict[str, RefExamples]:
    """The train / val / test parts of checklist SFT (test: the held-out rows), in the form
    :class:`~vrexp.data.checklist_data.ChecklistDataModule` trains on."""
    items = load_checklist_items(config, checklist)
    every = RefExamples(
        items.item_ids,
        items.prompts,
        list(items.media),  # type: ignore[arg-type]  # references, read by RefExamples.media
        items.labels,
        items.applicable,
        frames,
    )
    return {name: every.subset(items.rows(part)) for name, part in CHECKLIST_PARTS.items()}


class VisionRewardDBDataModule(ChecklistDataModule):
    """:class:`ChecklistDataModule` on a VisionRewardDB snapshot: the same balanced sampling and
    packing, its parts from :func:`checklist_parts`."""

    def __init__(self, config: Any, checklist: Checklist, **kwargs: Any) -> None:
        kwargs.setdefault("partition", PartitionConfig())  # unused: parts come from the hash
        super().__init__(config.root, checklist, **kwargs)
        self.config = config

    def setup(self, stage: str | None = None) -> None:
        if not self.parts:
            self.parts = checklist_parts(self.config, self.checklist, self.frames)


def is_visionrewarddb(dataset: Any) -> bool:
    return str(getattr(dataset, "kind", "")) == DatasetKind.visionrewarddb.value


def checklist_data_module(dataset: Any, checklist: Checklist, **kwargs: Any) -> ChecklistDataModule:
    """The checklist SFT data module of a ``dataset`` config: VisionRewardDB's, or the SynthWorld
    split's (rendered first when missing); ``kwargs`` as :class:`ChecklistDataModule` takes."""
    if is_visionrewarddb(dataset):
        kwargs.pop("partition", None)
        return VisionRewardDBDataModule(dataset, checklist, **kwargs)
    return ChecklistDataModule(ensure_split(dataset, checklist), checklist, **kwargs)


# ----------------------------------------------------------------------------- regression pairs


@dataclass
class RegressionPairs:
    """The ``regression`` config of VisionRewardDB-Video as item-id pairs.

    ``items`` are the distinct videos (ids 0, 1, ... in order of first appearance), each once;
    ``parts`` the pairs of each part (``train``, ``val``, ``heldout``; by the hash of the pair's
    ``internal_id``) with label +1 (video 1 preferred), -1 (video 2) or 0 (tie)."""

    revision: str | None
    files: tuple[Path, ...]
    items: list[Item]
    parts: dict[str, PreferencePairs]
    skipped: list[Skip] = field(default_factory=list)

    @property
    def records(self) -> dict[int, tuple[Path, str]]:
        """item id -> (video file, prompt), the form of :func:`vrexp.data.pairs.item_records`."""
        return {item.item_id: (item.media_path, item.prompt) for item in self.items}


REGRESSION_COLUMNS = {
    "internal_id": _is_id,
    "prompt": is_text,
    "standard_answer": is_text,
    "video1_path": is_text,
    "video2_path": is_text,
}


def load_regression_pairs(config: Any) -> RegressionPairs:
    """The regression pairs of the VisionRewardDB-Video snapshot ``config.root``."""
    name = VisionRewardDBName(config.name)
    if name is not VIDEO:
        raise VisionRewardDBError(
            f"{name} has no regression pairs here (dataset.split=regression is "
            "visionrewarddb_video's)"
        )
    root = require_dir(config.root, str(name))
    files = sorted((root / "regression").glob("*.parquet"))
    if not files:
        raise VisionRewardDBError(f"{name}: no parquet files in {root}/regression/")
    for file in files:
        check_columns(file, pq.read_schema(file), REGRESSION_COLUMNS)
    revision = check_revision(root, config.revision)
    base = _media_base(config, root)

    def rows() -> Iterator[tuple | RowError]:
        for file, row, values in iter_parquet_rows(files, list(REGRESSION_COLUMNS)):
            answer = values["standard_answer"]
            if answer not in REGRESSION_ANSWERS:
                yield RowError(
                    file,
                    row,
                    f"unknown standard_answer {answer!r} (expected one of "
                    f"{list(REGRESSION_ANSWERS)})",
                )
                continue
            if values["internal_id"] is None or str(values["internal_id"]) == "":
                yield RowError(file, row, "internal_id is empty")
                continue
            paths, problem = [], None
            for column in ("video1_path", "video2_path"):
                written = values[column] or ""
                path = media_file(base, written, by_name=True) if written else None
                if path is None:
                    problem = f"{column}: " + missing_media(base, written, by_name=True)
                    break
                paths.append(path)
            if problem is not None:
                yield RowError(file, row, problem)
                continue
            yield str(values["internal_id"]), values["prompt"] or "", paths, answer

    skipped: list[Skip] = []
    ids: dict[Path, int] = {}
    items: list[Item] = []
    a, b, label, part = [], [], [], []
    for internal_id, prompt, paths, answer in _row_errors(
        rows(), config.skip_invalid, str(name), skipped
    ):
        pair = []
        for path in paths:
            if path not in ids:
                ids[path] = len(items)
                items.append(Item(len(items), path, prompt))
            pair.append(ids[path])
        a.append(pair[0])
        b.append(pair[1])
        label.append(REGRESSION_ANSWERS[answer])
        part.append(part_of(internal_id, config.heldout_fraction, config.val_fraction))
    if not label:
        raise VisionRewardDBError(f"{name}: no usable regression pairs ({len(skipped)} skipped)")
    arrays = np.array(a), np.array(b), np.array(label, dtype=np.int64), np.array(part)
    parts = {
        p: PreferencePairs(
            arrays[0][arrays[3] == p], arrays[1][arrays[3] == p], arrays[2][arrays[3] == p]
        )
        for p in PARTS
    }
    return RegressionPairs(revision, tuple(files), items, parts, skipped)


# train / val / test of the pair stages -> VisionRewardDB's parts.
PAIR_PARTS = {"train": "train", "val": "val", "test": "heldout"}


def preference_pair_parts(dataset: Any, checklist: Checklist) -> dict[str, PreferencePairs]:
    """The human pairs of a ``dataset`` config in train / val / test: VisionRewardDB-Video's
    regression pairs (``dataset.split=regression``; test = the held-out pairs), or a SynthWorld
    split's (by its prompt partition)."""
    if not is_visionrewarddb(dataset):
        return pair_parts(preference_split(dataset, checklist), dataset.partition)
    if dataset.split != "regression":
        raise VisionRewardDBError(
            f"this stage needs human preference pairs: set dataset.split=regression "
            f"(dataset={dataset.name}, split={dataset.split!r} holds checklist items)"
        )
    pairs = load_regression_pairs(dataset)
    return {name: pairs.parts[part] for name, part in PAIR_PARTS.items()}


def preference_records(dataset: Any, checklist: Checklist) -> dict[int, tuple[Path, str]]:
    """item id -> (media file, prompt) of the items :func:`preference_pair_parts` pairs."""
    if not is_visionrewarddb(dataset):
        return item_records(preference_split(dataset, checklist))
    return load_regression_pairs(dataset).records


# ----------------------------------------------------------------------------- listings


def visionrewarddb_items(config: Any, checklist: Checklist) -> list[Item]:
    """The media of ``config.split`` as :class:`Item` (for stages that read media, such as
    ``annotate``): the regression videos (their ids those of :func:`load_regression_pairs`), or
    the train / held-out rows. An embedded image is an item named ``<shard>#row<N>`` (its row
    in the shard) whose ``media_ref`` reads its bytes."""
    if config.split == "regression":
        return load_regression_pairs(config).items
    items = load_checklist_items(config, checklist)
    wanted = items.rows(("train", "val") if config.split == "train" else "heldout")
    listed = []
    for r in wanted:
        ref = items.media[r]
        if isinstance(ref, ParquetMedia):
            name, media_ref = Path(f"{ref.file}#row{ref.row}"), ref
        else:
            name, media_ref = ref.path, None
        listed.append(Item(int(items.item_ids[r]), name, items.prompts[r], media_ref))
    return listed
