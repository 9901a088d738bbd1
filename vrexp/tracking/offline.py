"""Read offline W&B runs (``offline-run-*/run-*.wandb``) back without syncing them.

wandb >= 0.2x writes runs from its Go core and no longer ships a Python reader. The file is a
LevelDB-style log (W&B header, 32 KiB blocks, 7-byte record headers) of ``Record`` protobufs, which
the wandb package does ship. Tests use this to check what a sweep logged; users can use it to
collect results of offline sweeps.
"""

from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2 as pb

_HEADER = 7  # b":W&B" + magic (2 bytes) + version (1 byte)
_BLOCK = 32 * 1024
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


@dataclass
class OfflineRun:
    path: Path
    run_id: str = ""
    name: str = ""
    group: str = ""
    project: str = ""
    job_type: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None  # None while the run has not finished

    def logged(self, key: str) -> list[Any]:
        """Every value logged under ``key``, in order."""
        return [row[key] for row in self.history if key in row]


def _payloads(data: bytes, path: Path) -> list[bytes]:
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B run file")
    out, pending, pos = [], b"", _HEADER
    while pos + 7 <= len(data):
        if _BLOCK - pos % _BLOCK < 7:  # block trailer padding
            pos += _BLOCK - pos % _BLOCK
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == _FULL:
            out.append(chunk)
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE:
            pending += chunk
        elif kind == _LAST:
            out.append(pending + chunk)
            pending = b""
        elif kind == 0 and length == 0:
            break
    return out


def _item_key(item: Any) -> str:
    return item.key or "/".join(item.nested_key)


def read_offline_run(path: str | Path) -> OfflineRun:
    """Parse one ``run-*.wandb`` file (or the ``offline-run-*`` folder that holds it)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("run-*.wandb"))
        if not files:
            raise FileNotFoundError(f"no run-*.wandb file in {path}")
        path = files[0]
    run = OfflineRun(path=path)
    for payload in _payloads(path.read_bytes(), path):
        record = pb.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.run_id, run.name, run.group = r.run_id, r.display_name, r.run_group
            run.project, run.job_type = r.project, r.job_type
            for item in r.config.update:
                run.config[_item_key(item)] = json.loads(item.value_json)
        elif kind == "config":
            for item in record.config.update:
                run.config[_item_key(item)] = json.loads(item.value_json)
        elif kind == "history":
            run.history.append(
                {_item_key(i): json.loads(i.value_json) for i in record.history.item}
            )
        elif kind == "exit":
            run.exit_code = int(record.exit.exit_code)
        elif kind == "summary":
            for item in record.summary.update:
                run.summary[_item_key(item)] = json.loads(item.value_json)
    return run


def read_offline_runs(root: str | Path) -> list[OfflineRun]:
    """Every offline run below ``root`` (e.g. a multirun sweep folder), in path order."""
    return [read_offline_run(p) for p in sorted(Path(root).rglob("offline-run-*")) if p.is_dir()]


def finished_offline_runs(root: str | Path, *, timeout_s: float = 20.0) -> list[OfflineRun]:
    """:func:`read_offline_runs` once every run below ``root`` has its exit record: wandb-core
    writes the offline file on its own after ``finish()`` returns, so a reader right after a job
    can see it half-written. Waits at most ``timeout_s``, then returns what is there."""
    deadline = time.monotonic() + timeout_s
    while True:
        runs = read_offline_runs(root)
        if (runs and all(r.exit_code is not None for r in runs)) or time.monotonic() > deadline:
            return runs
        time.sleep(0.2)
