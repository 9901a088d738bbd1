"""Content digests of what a resumable output was made from: its item list, its model, its weights.

An output folder's manifest (:func:`vrexp.data.atomic.claim_output`) records these, so a resume
notices a model replaced at the same path or an edited prompts file, which a path alone hides.

A model loaded from a folder is known by the SHA-256 of every file in it (weights, config,
tokenizer); one built in memory (a tiny test model, a generator built from config) by the SHA-256
of its state dict. Hashing multi-GB weights costs seconds (about 0.45 GiB/s on the shared test
machine), so a file's digest is cached, keyed by (resolved path, size, mtime_ns): a file rewritten
or replaced gets a new mtime. The cache lives in this process and is seeded from the folder
entries of the manifest a job resumes (:func:`remember`), so a resume hashes only files whose size
or mtime changed. A file changed in place with its size and mtime restored would go unnoticed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

_CHUNK = 1 << 20
_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (cached by path, size and mtime_ns)."""
    path = Path(path).resolve()
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_DIGESTS:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while block := f.read(_CHUNK):
                digest.update(block)
        _FILE_DIGESTS[key] = digest.hexdigest()
    return _FILE_DIGESTS[key]


def folder_digest(folder: str | Path) -> dict[str, Any]:
    """``{"path", "files", "sha256", "file_stats"}`` of every file under ``folder`` (hidden ones
    left out), by relative path and content; ``file_stats`` ([size, mtime_ns, sha256] per
    relative path) lets a later job reuse the digests (:func:`remember`)."""
    folder = Path(folder)
    digest = hashlib.sha256()
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    stats = {}
    for path in files:
        rel, stat, sha = path.relative_to(folder).as_posix(), path.stat(), file_sha256(path)
        digest.update(f"{rel}\0{sha}\n".encode())
        stats[rel] = [stat.st_size, stat.st_mtime_ns, sha]
    return {
        "path": str(folder.resolve()),
        "files": len(files),
        "sha256": digest.hexdigest(),
        "file_stats": stats,
    }


def remember(manifest: Any) -> None:
    """Seed the file-digest cache from the folder entries of a recorded manifest."""
    if isinstance(manifest, dict):
        if isinstance(manifest.get("path"), str) and isinstance(manifest.get("file_stats"), dict):
            root = Path(manifest["path"])
            for rel, (size, mtime_ns, sha) in manifest["file_stats"].items():
                _FILE_DIGESTS.setdefault((str(root / rel), int(size), int(mtime_ns)), str(sha))
        for value in manifest.values():
            remember(value)


def tensors_sha256(tensors: Iterable[tuple[str, torch.Tensor]]) -> str:
    """SHA-256 of named tensors: names, dtypes, shapes and bytes."""
    digest = hashlib.sha256()
    for name, tensor in tensors:
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\n".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def module_digest(module: Any) -> dict[str, Any]:
    """The digest of a loaded model: its folder's files when it was loaded from one
    (``config.name_or_path``), else its state dict (an object with none, such as a procedural
    renderer, is known by its class)."""
    source = getattr(getattr(module, "config", None), "name_or_path", None)
    if source is not None and Path(source).is_dir():
        return folder_digest(source)
    if isinstance(module, torch.nn.Module):
        return {"path": None, "sha256": tensors_sha256(sorted(module.state_dict().items()))}
    name = f"{type(module).__module__}.{type(module).__qualname__}"
    return {"path": None, "class": name, "sha256": hashlib.sha256(name.encode()).hexdigest()}


def items_digest(rows: Iterable[Any]) -> dict[str, Any]:
    """``{"count", "sha256"}`` of an ordered list of JSON-able rows (an item's id, media path and
    prompt; or a prompt)."""
    digest, count = hashlib.sha256(), 0
    for row in rows:
        digest.update(json.dumps(row, sort_keys=True, default=str).encode() + b"\n")
        count += 1
    return {"count": count, "sha256": digest.hexdigest()}


def config_digest(config: Any, **shown: Any) -> dict[str, Any]:
    """``{**shown, "sha256"}`` of a JSON-able config (a checklist, say), for a manifest entry
    that is compared whole; ``shown`` (e.g. its name) is kept readable beside it."""
    text = json.dumps(config, sort_keys=True, default=str)
    return {**shown, "sha256": hashlib.sha256(text.encode()).hexdigest()}


def item_rows(items: Iterable[Any]) -> Iterable[list[Any]]:
    """What an :class:`~vrexp.data.items.Item` contributes to an item-list digest."""
    return ([item.item_id, str(item.media_path), item.prompt] for item in items)
