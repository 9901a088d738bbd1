"""Overrides that shrink the tiny backbone and generator to toy sizes (a one-layer VLM, a
two-step generator), shared by the tests that run the inference stages end to end."""

from __future__ import annotations

# The checklist VLM alone (no logger choice), for tests that pick their own logger.
TINY_VLM = [
    "backbone.tiny.hidden_size=32",
    "backbone.tiny.num_layers=1",
    "backbone.tiny.intermediate_size=64",
    "backbone.tiny.vision_hidden_size=32",
    "backbone.tiny.vision_layers=1",
    "backbone.tiny.vocab_size=300",
    "backbone.image_size=32",
]
TINY_BACKBONE = ["logger=none", *TINY_VLM]
TINY = [
    *TINY_BACKBONE,
    "generator.image_size=16",
    "generator.num_inference_steps=2",
    "generator.tiny.block_out_channels=[32,32]",
    "generator.tiny.text_hidden_size=32",
    "generator.tiny.text_layers=1",
    "generator.tiny.vocab_size=300",
]
