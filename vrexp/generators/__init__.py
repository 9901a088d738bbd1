"""Text-to-image and text-to-video generators (diffusers classes), their codecs and schedules."""

from vrexp.generators.codecs import SpaceToDepth, VaeCodec, from_unit, to_unit
from vrexp.generators.families import (
    FAMILIES,
    CogVideoXGenerator,
    GeneratorError,
    SDGenerator,
    SDXLGenerator,
    TextToMediaGenerator,
    build_generator,
    load_generator,
)
from vrexp.generators.schedules import PREDICTION_TYPES, NoiseSchedule

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
