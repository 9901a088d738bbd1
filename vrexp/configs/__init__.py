"""Config schemas (structured configs), one module per config group, and their registration.

Importing this package registers the schemas with Hydra (``base_*`` names) and the
``by_media`` resolver. The valid values of every choice are the enums of
:mod:`vrexp.configs.choices`.
"""

from vrexp.configs.backbone import BackboneConfig, FrameSampling, LoraSettings, TinyModelConfig
from vrexp.configs.checklist import ChecklistConfig
from vrexp.configs.checks import ConfigValueError
from vrexp.configs.choices import Media
from vrexp.configs.dataset import (
    BenchmarkDatasetConfig,
    MediaFolderConfig,
    PartitionConfig,
    SynthWorldConfig,
    VisionRewardDBConfig,
)
from vrexp.configs.dpo import DPOConfig
from vrexp.configs.experiments import register_experiments
from vrexp.configs.generator import GeneratorConfig, GeneratorLora, TinyGeneratorConfig
from vrexp.configs.help import register_help_resolver
from vrexp.configs.registry import check_known_keys, register_configs, validate_config
from vrexp.configs.training import (
    BackboneOptimSettings,
    ItemCacheSettings,
    OptimSettings,
    TrainingBudget,
)

register_configs()
register_experiments()
register_help_resolver()

__all__ = [
    "BackboneConfig",
    "BackboneOptimSettings",
    "BenchmarkDatasetConfig",
    "ChecklistConfig",
    "ConfigValueError",
    "DPOConfig",
    "FrameSampling",
    "GeneratorConfig",
    "GeneratorLora",
    "ItemCacheSettings",
    "LoraSettings",
    "Media",
    "MediaFolderConfig",
    "OptimSettings",
    "PartitionConfig",
    "SynthWorldConfig",
    "TinyGeneratorConfig",
    "TinyModelConfig",
    "TrainingBudget",
    "VisionRewardDBConfig",
    "check_known_keys",
    "register_configs",
    "register_experiments",
    "register_help_resolver",
    "validate_config",
]
