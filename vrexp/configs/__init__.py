"""Config schemas (structured configs) and their registration with Hydra."""

from vrexp.configs.schema import register_configs

register_configs()

__all__ = ["register_configs"]
