"""What a trained checklist model folder records about its training, and the device it runs on.

``train_checklist`` writes, beside the weights, the checklist the model was trained to answer
(``checklist.yaml``) and the data it saw (``trained_on.json``: the dataset's name, kind, media and,
for SynthWorld, its render size, with the package versions it was trained with). The scorer reads
both to warn when a model is asked questions it never learnt, or shown media unlike anything it was
trained on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vrexp.backbones.base import BackboneError
from vrexp.checklist import Checklist
from vrexp.configs.choices import DatasetKind, Media
from vrexp.configs.versioning import check_format, package_versions, stamp

CHECKLIST_FILE, TRAINED_ON_FILE = "checklist.yaml", "trained_on.json"


@dataclass(frozen=True)
class TrainedOn:
    """The training data of a checklist model folder."""

    dataset: str
    kind: DatasetKind
    media: Media
    image_size: int | None = None  # SynthWorld: the square render size
    # Python's and the numeric packages' versions at training (None: a folder written before
    # vrexp recorded them); the same seed under other versions trains another model.
    packages: dict[str, str | None] | None = None

    @property
    def synthworld(self) -> bool:
        return self.kind is DatasetKind.synthworld


def save_provenance(directory: str | Path, checklist: Checklist, dataset: Any) -> None:
    """Record ``checklist`` and ``dataset`` (a dataset config object) in a model folder."""
    directory = Path(directory)
    checklist.to_yaml(directory / CHECKLIST_FILE)
    kind = DatasetKind(dataset.kind)
    record = {
        "dataset": dataset.name,
        "kind": kind.value,
        "media": Media(dataset.media).value,
        "image_size": getattr(dataset, "image_size", None)
        if kind is DatasetKind.synthworld
        else None,
        "packages": package_versions(),
    }
    (directory / TRAINED_ON_FILE).write_text(json.dumps(stamp(record), indent=2) + "\n")


def trained_checklist(directory: str | Path | None) -> Checklist | None:
    """The checklist a model folder was trained on (None: not recorded, e.g. a hub model)."""
    path = Path(directory) / CHECKLIST_FILE if directory else None
    return Checklist.from_yaml(path) if path is not None and path.is_file() else None


def trained_on(directory: str | Path | None) -> TrainedOn | None:
    """The training data a model folder records (None: not recorded)."""
    path = Path(directory) / TRAINED_ON_FILE if directory else None
    if path is None or not path.is_file():
        return None
    _, record = check_format(directory, json.loads(path.read_text()))
    return TrainedOn(
        dataset=record["dataset"],
        kind=DatasetKind(record["kind"]),
        media=Media(record["media"]),
        image_size=record.get("image_size"),
        packages=record.get("packages"),
    )


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None``: the GPU when torch sees one, else the CPU; a CUDA device that is absent is an
    error that says so (rather than torch's lazy-init traceback at the first forward)."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise BackboneError(f"device={device!r} is not a torch device: {err}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise BackboneError(
            f"device={device!r}: torch sees no CUDA device on this machine (torch "
            f"{torch.__version__}, CUDA build: {torch.version.cuda or 'none'}); use device='cpu'"
        )
    return resolved
