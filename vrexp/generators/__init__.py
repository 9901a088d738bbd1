"""Text-to-image and text-to-video generators on real diffusers classes, one module per family
(``sd``, ``sdxl``, ``cogvideox``) behind the interface of :mod:`vrexp.generators.base`, with their
codecs, noise schedules, building and loading, and seeded sampling."""

from vrexp.generators.base import GeneratorError, TextToMediaGenerator
from vrexp.generators.codecs import SpaceToDepth, VaeCodec, from_unit, to_unit
from vrexp.generators.cogvideox import CogVideoXGenerator
from vrexp.generators.loading import FAMILIES, build_generator, load_generator
from vrexp.generators.schedules import PREDICTION_TYPES, NoiseSchedule
from vrexp.generators.sd import SDGenerator
from vrexp.generators.sdxl import SDXLGenerator

__all__ = [
    "FAMILIES",
    "PREDICTION_TYPES",
    "CogVideoXGenerator",
    "GeneratorError",
    "NoiseSchedule",
    "SDGenerator",
    "SDXLGenerator",
    "SpaceToDepth",
    "TextToMediaGenerator",
    "VaeCodec",
    "build_generator",
    "from_unit",
    "load_generator",
    "to_unit",
]
