"""Checklist VLMs: adapters on transformers classes with one-pass, prefix-cached P(yes) answering."""

from vrexp.backbones.base import BackboneError, ChecklistBackbone, Prefix
from vrexp.backbones.families import FAMILIES, build_backbone, load_backbone

__all__ = [
    "FAMILIES",
    "BackboneError",
    "ChecklistBackbone",
    "Prefix",
    "build_backbone",
    "load_backbone",
]
