"""Config schemas (structured configs) and their registration with Hydra."""

from vrexp.configs.experiments import register_experiments
from vrexp.configs.help import register_help_resolver
from vrexp.configs.schema import register_configs

register_configs()
register_experiments()
register_help_resolver()

__all__ = ["register_configs", "register_experiments", "register_help_resolver"]
