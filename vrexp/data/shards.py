"""Sharded inference: which items a process answers, where it writes them, and the merge.

``annotate``, ``score`` and ``sample`` split their item list across processes: the ranks of a
``torchrun --nproc_per_node N`` launch (``RANK`` of ``WORLD_SIZE``, read from the environment; no
process group is needed), or independent jobs given ``task.shard=I/N`` (``task.shard=slurm``
reads ``SLURM_ARRAY_TASK_ID`` and ``SLURM_ARRAY_TASK_COUNT``). This module owns the spec, its
checks, the split and the merge; docs/sharding.md is the user's guide.

The split is by part: the item list is cut into the chunks a single process would write
(``task.chunk_size`` items each) and shard I of N takes chunks ``floor(I*K/N)`` up to
``floor((I+1)*K/N)`` of the K, a contiguous run of the list. So a shard's parts are the very
part files a single-process run writes, and the merged folder equals it file for file.

Layout of a sharded output folder::

    <out_dir>/shards/I-of-N/    one resumable parts folder per shard (its own manifest and lock;
                                the manifest's ``items`` are the shard's, ``shard`` says which
                                shard of which item list it is)
    <out_dir>/manifest.json     after the merge: the manifest a single-process run writes
    <out_dir>/part-*.parquet    after the merge: every shard's parts (hard links where the file
                                system allows, else copies), plus the stage's other files

A shard that finishes merges when it finds every shard of its set complete (under the output
folder's lock, so of shards that finish together one merges and the others find it merged);
``task.shard=merge`` merges explicitly and names the shards that are missing or unfinished.
"""

from __future__ import annotations

import filecmp
import logging
import os
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from vrexp.configs.checks import ConfigValueError
from vrexp.data.atomic import claim_output, manifest_changes, read_manifest
from vrexp.data.parts import PART_GLOB, present_keys

log = logging.getLogger(__name__)

T = TypeVar("T")
SHARDS_DIR = "shards"
MERGE = "merge"  # task.shard=merge
SLURM = "slurm"  # task.shard=slurm
SHARD_KEY = "shard"  # the manifest entry of a shard's folder
_FOLDER = re.compile(r"^(\d+)-of-(\d+)$")
_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
# Ranks wait at the barrier for the slowest shard, which after a resume may hold all its work.
_BARRIER_TIMEOUT = timedelta(days=7)
VALID_FORMS = (
    "I/N with 0 <= I < N (e.g. task.shard=3/64), slurm (I and N from SLURM_ARRAY_TASK_ID and "
    "SLURM_ARRAY_TASK_COUNT), merge (gather finished shards), or null (one process, or the ranks "
    "of torchrun)"
)


class ShardSpecError(ConfigValueError):
    """A ``task.shard`` value (or the environment it reads) that names no shard."""


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count``; ``source`` says where it came from (``task.shard``,
    ``slurm`` or ``torchrun``)."""

    index: int
    count: int
    source: str = "task.shard"

    @property
    def name(self) -> str:
        return f"{self.index}-of-{self.count}"

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def reports(self) -> bool:
        """Whether this process shows progress: every job of an array has its own log, but the
        ranks of one torchrun launch share a terminal, so only rank zero speaks there."""
        return self.source != "torchrun" or self.index == 0

    def folder(self, out_dir: str | Path) -> Path:
        return Path(out_dir) / SHARDS_DIR / self.name

    def bounds(self, num_items: int, chunk_size: int) -> tuple[int, int]:
        """[start, stop) of this shard's items in a list of ``num_items`` cut into parts of
        ``chunk_size``."""
        chunks = -(-num_items // chunk_size)
        first, last = self.index * chunks // self.count, (self.index + 1) * chunks // self.count
        return min(first * chunk_size, num_items), min(last * chunk_size, num_items)

    def size(self, num_items: int, chunk_size: int) -> int:
        start, stop = self.bounds(num_items, chunk_size)
        return stop - start

    def split(self, items: Sequence[T], chunk_size: int) -> Sequence[T]:
        start, stop = self.bounds(len(items), chunk_size)
        if start == stop and items:
            log.warning(
                "shard %s has no items: the %d items make %d parts of task.chunk_size=%d, fewer "
                "than the %d shards; a smaller task.chunk_size spreads them over every shard",
                self.label,
                len(items),
                -(-len(items) // chunk_size),
                chunk_size,
                self.count,
            )
        return items[start:stop]


def parse_shard(
    spec: str | int | None, env: Mapping[str, str] | None = None, key: str = "task.shard"
) -> Shard | str | None:
    """The shard this process runs: a :class:`Shard`, :data:`MERGE`, or None (one process, no
    shards). ``spec`` null reads torchrun's ``RANK`` / ``WORLD_SIZE`` from ``env`` (default the
    process environment); a spec that names no shard is an error naming ``key`` and the valid
    forms."""
    env = os.environ if env is None else env
    world = _env_int(env, "WORLD_SIZE", key, spec)
    if spec is not None and world is not None and world > 1:
        raise ShardSpecError(
            f"{key}={spec!r} given in a torchrun launch of WORLD_SIZE={world}: the ranks are the "
            f"shards there; leave {key} unset, or start the jobs without torchrun"
        )
    if spec is None:
        if world is None or world <= 1:
            return None
        rank = _env_int(env, "RANK", key, spec)
        if rank is None or not 0 <= rank < world:
            raise ShardSpecError(f"torchrun set WORLD_SIZE={world} but RANK={env.get('RANK')!r}")
        return Shard(rank, world, "torchrun")
    text = str(spec).strip()
    if text.lower() == MERGE:
        return MERGE
    if text.lower() == SLURM:
        task_id = _env_int(env, "SLURM_ARRAY_TASK_ID", key, spec)
        count = _env_int(env, "SLURM_ARRAY_TASK_COUNT", key, spec)
        if task_id is None or count is None:
            raise ShardSpecError(
                f"{key}=slurm reads SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT, which this "
                "process does not have: start it as a SLURM array job (sbatch --array=0-63 ...), "
                "or give the shard as I/N"
            )
        index = task_id - (_env_int(env, "SLURM_ARRAY_TASK_MIN", key, spec) or 0)
        if not 0 <= index < count:
            raise ShardSpecError(
                f"{key}=slurm: SLURM_ARRAY_TASK_ID={task_id} is not one of {count} consecutive "
                "array ids; submit the array as --array=0-<N-1> (a % limit is fine)"
            )
        return Shard(index, count, SLURM)
    match = _SPEC.match(text)
    if match is None or not 0 <= int(match[1]) < int(match[2]):
        raise ShardSpecError(f"{key}={spec!r} names no shard; valid forms: {VALID_FORMS}")
    return Shard(int(match[1]), int(match[2]))


def _env_int(env: Mapping[str, str], name: str, key: str, spec: Any) -> int | None:
    value = env.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ShardSpecError(
            f"{key}={spec!r}: the environment variable {name}={value!r} is not an integer"
        ) from None


def shard_device(device: torch.device, shard: Shard | str | None) -> torch.device:
    """The GPU of a torchrun rank (``LOCAL_RANK``, modulo the GPUs there are: more ranks than
    GPUs share them) where the task asked for the GPU without an index; every other device as
    given."""
    local = os.environ.get("LOCAL_RANK")
    if (
        isinstance(shard, Shard)
        and shard.source == "torchrun"
        and device.type == "cuda"
        and device.index is None
        and local is not None
    ):
        return torch.device("cuda", int(local) % max(torch.cuda.device_count(), 1))
    return device


def finish_shard(shard: Shard, merge: Callable[[bool], bool]) -> bool:
    """End a shard's job: try the merge (``merge(strict)``); True when the shards are merged.

    An array job merges when it finds every shard complete (the last to finish does). The ranks
    of one torchrun launch wait for each other instead, rank zero merges, and every rank learns
    the outcome, so a chain's next stage on any rank reads the merged folder."""
    if shard.source != "torchrun":
        return merge(False)
    own = not dist.is_initialized()
    if own:  # the ranks of an inference launch share no group otherwise; gloo needs no GPU
        dist.init_process_group("gloo", timeout=_BARRIER_TIMEOUT)
    try:
        dist.barrier()
        outcome: list[Any] = [None]
        if shard.index == 0:
            try:
                outcome[0] = merge(True)
            except Exception as err:
                outcome[0] = f"{type(err).__name__}: {err}"
                dist.broadcast_object_list(outcome, src=0)
                raise
        dist.broadcast_object_list(outcome, src=0)
        if isinstance(outcome[0], str):
            raise RuntimeError(f"rank 0 could not merge the shards: {outcome[0]}")
        return bool(outcome[0])
    finally:
        if own:
            dist.destroy_process_group()


def progress_label(text: str, shard: Shard | str | None) -> str:
    return text if not isinstance(shard, Shard) else f"{text} (shard {shard.label})"


def merge_note(result: Mapping[str, Any], out_dir: str | Path) -> str:
    """How a shard's end is told: merged, or waiting for the others."""
    if result.get("merged"):
        return f"; every shard complete, merged into {out_dir}"
    return "; the last shard to finish merges them"


def shard_entry(shard: Shard, all_items: dict[str, Any]) -> dict[str, Any]:
    """The manifest entry that marks a shard's folder: which shard, of which item list."""
    return {SHARD_KEY: {"index": shard.index, "count": shard.count, "items": all_items}}


def require_shared_out_dir(
    out_dir: str | None, shard: Shard | str, key: str = "task.out_dir"
) -> None:
    """Shards meet in one folder: the default (inside each job's own run folder) never does."""
    if out_dir is None:
        if isinstance(shard, Shard) and shard.source == "torchrun":
            what = f"a torchrun launch of {shard.count} ranks (each a shard)"
        else:
            what = f"task.shard={shard if isinstance(shard, str) else shard.label}"
        raise ShardSpecError(
            f"{what} needs {key}: every shard (and the merge) must write into the same "
            f"folder, and the default lies in each job's own run folder; set {key}=DIR"
        )


@dataclass
class ShardState:
    shard: Shard
    folder: Path
    done: int | None  # items the parts hold; None: no manifest (never started)
    expected: int | None


def shard_states(
    out_dir: str | Path, key_column: str, count: int | None, error: type[Exception]
) -> list[ShardState]:
    """The state of every shard of the set of ``count`` shards under ``out_dir`` (None: the one
    set there is; folders of two sets are an error naming them)."""
    root = Path(out_dir) / SHARDS_DIR
    found = sorted(
        (int(m[2]), int(m[1]))
        for p in (root.iterdir() if root.is_dir() else [])
        if p.is_dir() and (m := _FOLDER.match(p.name))
    )
    counts = sorted({n for n, _ in found})
    if count is None:
        if not counts:
            raise error(f"{out_dir} holds no shards (no folder {root}/I-of-N)")
        if len(counts) > 1:
            raise error(
                f"{root} holds shards of {len(counts)} splits ({', '.join(map(str, counts))} "
                "shards): delete the folders of the split you do not want, then merge again"
            )
        count = counts[0]
    states = []
    for index in range(count):
        shard = Shard(index, count)
        folder = shard.folder(out_dir)
        manifest = read_manifest(folder) if folder.is_dir() else None
        if manifest is None:
            states.append(ShardState(shard, folder, None, None))
            continue
        keys = present_keys(folder, key_column, error)
        expected = (manifest.get("items") or {}).get("count")
        states.append(ShardState(shard, folder, len(keys), expected))
    return states


def unfinished(states: Sequence[ShardState]) -> str:
    """What stops a merge, one phrase per unfinished shard ('' when every shard is complete)."""
    missing = [s.shard.label for s in states if s.done is None]
    partial = [
        f"{s.shard.label} ({s.done} of {s.expected} items)"
        for s in states
        if s.done is not None and s.done != s.expected
    ]
    phrases = []
    if missing:
        many = len(missing) > 1
        phrases.append(
            f"shard{'s' if many else ''} {', '.join(missing)} {'have' if many else 'has'} not "
            "started"
        )
    if partial:  # a running shard holds its lock; testing the lock would race with its start
        many = len(partial) > 1
        phrases.append(
            f"shard{'s' if many else ''} {', '.join(partial)} {'are' if many else 'is'} "
            "unfinished (stopped, or still running)"
        )
    return "; ".join(phrases)


def require_merged(folder: str | Path, key_column: str, error: type[Exception]) -> None:
    """For readers: a folder that holds shards but no merged result is an error saying which
    shards are missing, or (all complete) how to merge them."""
    if not (Path(folder) / SHARDS_DIR).is_dir() or read_manifest(folder) is not None:
        return
    states = shard_states(folder, key_column, None, error)
    problem = unfinished(states)
    count = states[0].shard.count
    if problem:
        raise error(
            f"{folder} holds {count} shards that are not merged: {problem}; rerun the stopped "
            "ones with the same settings (the last to finish merges; task.shard=merge merges "
            "by hand)"
        )
    raise error(
        f"{folder} holds {count} finished shards that are not merged; merge them with the "
        "same command and task.shard=merge"
    )


def merge_shards(
    out_dir: str | Path,
    *,
    key_column: str,
    what: str,
    stale: tuple[str, ...],
    error: type[Exception],
    labels: Mapping[str, str] | None = None,
    files: tuple[str, ...] = (),
    count: int | None = None,
    overwrite: bool = False,
    strict: bool = True,
    finish: Callable[[Path], None] | None = None,
) -> bool:
    """Gather the shards under ``out_dir`` into it, as a single-process run writes it: its parts,
    the other ``files`` (globs relative to a shard folder, e.g. ``media/*``) and the manifest
    of the whole item list; then ``finish(out_dir)`` (gathered tables) under the folder's lock.

    Unfinished shards, or shards made otherwise than each other, are an error naming them
    (``strict``); with ``strict`` false (a shard's own end) they make the merge wait for the
    last shard, and False is returned. The folder's lock is waited for, not refused: shards that
    finish together merge one after the other, the later ones finding the work done."""
    out_dir = Path(out_dir)
    states = shard_states(out_dir, key_column, count, error)
    problem = unfinished(states)
    if problem:
        if strict:
            raise error(
                f"cannot merge the shards of {out_dir}: {problem}; rerun the stopped ones with "
                "the same settings"
            )
        log.info("shards of %s not merged yet: %s", out_dir, problem)
        return False
    manifests = [read_manifest(s.folder) or {} for s in states]
    common = [{k: v for k, v in m.items() if k not in ("items", SHARD_KEY)} for m in manifests]
    for state, manifest, settings in zip(states, manifests, common, strict=True):
        entry = manifest.get(SHARD_KEY) or {}
        changes = manifest_changes(common[0], settings, labels)
        if entry.get("items") != manifests[0].get(SHARD_KEY, {}).get("items"):
            changes.insert(0, "the item list differs")
        if (entry.get("index"), entry.get("count")) != (state.shard.index, state.shard.count):
            changes.insert(0, f"its manifest says shard {entry.get('index')}/{entry.get('count')}")
        if changes:
            raise error(
                f"cannot merge the shards of {out_dir}: shard {state.shard.label} was made "
                f"otherwise than shard {states[0].shard.label}: {'; '.join(changes[:6])}; rerun "
                f"it with the same settings (task.overwrite=true starts it afresh)"
            )
    all_items = manifests[0][SHARD_KEY]["items"]
    if sum(s.done or 0 for s in states) != all_items["count"]:
        raise error(
            f"cannot merge the shards of {out_dir}: they hold {sum(s.done or 0 for s in states)} "
            f"items, but their item list has {all_items['count']}"
        )
    merged = {**common[0], "items": all_items}
    with claim_output(
        out_dir, merged, overwrite, stale=stale, what=what, labels=labels, error=error, wait=True
    ):
        placed = 0
        for pattern in (*files, PART_GLOB):  # parts last: a merged part's files are in place
            for state in states:
                for source in sorted(state.folder.glob(pattern)):
                    if source.is_file() and not source.name.startswith("."):
                        placed += _place(source, out_dir / source.relative_to(state.folder), error)
        keys = present_keys(out_dir, key_column, error)
        if len(keys) != all_items["count"]:
            raise error(
                f"{out_dir} holds {len(keys)} items after the merge, not {all_items['count']}: "
                "it holds parts of another run; merge with task.overwrite=true"
            )
        if finish is not None:
            finish(out_dir)
    if placed:  # else another shard (finishing at the same time) merged them first
        log.info("merged %d shards into %s (%d items)", len(states), out_dir, all_items["count"])
    return True


def _place(source: Path, target: Path, error: type[Exception]) -> bool:
    """Put a shard's file in the merged folder: a hard link (no copy of the bytes) where the
    file system allows, else a copy; a file already there must be the same (False: it was)."""
    if target.exists():
        if not (os.path.samefile(source, target) or filecmp.cmp(source, target, shallow=False)):
            raise error(
                f"{target} differs from {source}: the folder holds files of another run; merge "
                "with task.overwrite=true"
            )
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:  # another file system, or one without hard links
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)
    return True


__all__ = [
    "MERGE",
    "SHARDS_DIR",
    "SLURM",
    "Shard",
    "ShardSpecError",
    "merge_shards",
    "parse_shard",
    "require_merged",
    "require_shared_out_dir",
    "shard_entry",
    "shard_states",
]
