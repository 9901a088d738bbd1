"""What vrexp trusts in a model folder before any library reads it (docs/security.md).

A model folder (a checklist model, a generator, a VisionReward's ``checklist_model/``, or a
folder given as ``name_or_path``) is data from elsewhere. Loading one must never run its code:

- pickled weights (``.bin``, ``.pt``, ``.pkl``, ...) are refused by name: unpickling runs code,
  and vrexp loads safetensors only (``use_safetensors=True`` in every ``from_pretrained``);
- a JSON config with ``auto_map`` asks transformers to import the folder's own Python files; it is
  refused unless the *caller* opted in (``backbone.trust_remote_code=true`` or the
  ``trust_remote_code=`` argument);
- a folder's own settings file cannot grant itself ``trust_remote_code``: only the user's config
  or call decides it;
- every ``.safetensors`` file's header is checked against its size, so a truncated or corrupt
  file is an error naming it, not a traceback from deep inside a loader.

This is a primitive: it imports no other vrexp module.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

# Files whose loading unpickles: torch's and Python's pickles, Lightning checkpoints, joblib.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")
REMOTE_CODE_KEY = "auto_map"
# JSON files larger than this are data (tokenizer.json vocabularies), not configs with auto_map.
_CONFIG_BYTES = 4 * 2**20
_MAX_HEADER = 100 * 2**20  # safetensors caps its JSON header at 100 MB


class UntrustedFolderError(RuntimeError):
    """A model folder that asks for something vrexp does not do unasked (run its code, unpickle)."""


def check_model_folder(
    directory: str | Path, *, trust_remote_code: bool, opt_in: str = "trust_remote_code=true"
) -> None:
    """Refuse a local model folder that holds pickles, asks to run its code without the caller's
    opt-in (``opt_in`` names the switch in the message), or holds a corrupt safetensors file."""
    directory = Path(directory)
    if not directory.is_dir():
        return  # a hub id: transformers resolves it, under the caller's switches
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    for path in files:
        if path.suffix.lower() in PICKLE_SUFFIXES:
            raise UntrustedFolderError(
                f"model folder {directory}: {path.relative_to(directory)} is a pickle file "
                f"({path.suffix}); vrexp loads weights from .safetensors only, since unpickling "
                "can run code. Convert it (e.g. load it once where you trust it and call "
                "save_pretrained(..., safe_serialization=True)) and remove the pickle"
            )
    if not trust_remote_code:
        for path in files:
            if path.suffix == ".json" and path.stat().st_size <= _CONFIG_BYTES:
                config = _read_json(path)
                if isinstance(config, dict) and REMOTE_CODE_KEY in config:
                    raise UntrustedFolderError(
                        f"model folder {directory}: {path.relative_to(directory)} has "
                        f"{REMOTE_CODE_KEY!r} ({_show(config[REMOTE_CODE_KEY])}), which asks to "
                        "run the folder's own Python code; vrexp runs none unless you opt in "
                        f"with {opt_in} (docs/security.md)"
                    )
    for path in files:
        if path.suffix == ".safetensors":
            check_safetensors(path)


def refuse_folder_switches(
    settings_file: Path, settings: Mapping[str, Any], switches: Iterable[str], *, granted: bool
) -> None:
    """A folder's saved settings may not switch on remote code: only the caller decides it.
    (``granted``: the caller opted in itself, so the folder's value is moot.)"""
    for key in switches:
        if key == "trust_remote_code" and settings.get(key) and not granted:
            raise UntrustedFolderError(
                f"{settings_file}: the folder sets {key}={settings[key]!r}, but a folder cannot "
                f"grant itself remote code; pass {key}=true yourself (backbone.{key}=true) only "
                "if you trust this folder's Python files (docs/security.md)"
            )


def check_safetensors(path: Path) -> None:
    """Raise naming ``path`` when its header does not describe exactly the bytes it holds."""
    size = path.stat().st_size
    try:
        with path.open("rb") as f:
            raw = f.read(8)
            if len(raw) < 8:
                raise ValueError(f"{size} bytes: shorter than a safetensors header")
            (length,) = struct.unpack("<Q", raw)
            if length > min(size - 8, _MAX_HEADER):
                raise ValueError(f"header of {length} bytes in a file of {size} bytes")
            header = json.loads(f.read(length))
        ends = [
            entry["data_offsets"][1]
            for name, entry in header.items()
            if name != "__metadata__" and isinstance(entry, dict)
        ]
        expected = 8 + length + max(ends, default=0)
        if expected != size:
            raise ValueError(f"the header describes {expected} bytes, the file holds {size}")
    except (ValueError, KeyError, IndexError, TypeError, UnicodeDecodeError) as err:
        raise UntrustedFolderError(
            f"weights file {path} is truncated or corrupt ({err}); copy or save it again"
        ) from err


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None  # not a config; the loader that needs it reports it


def _show(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 120 else text[:117] + "..."
