"""Registration of every schema with Hydra's ConfigStore, and validation of a composed config.

Each YAML option in ``conf/<group>/`` lists its schema first in its defaults list (``- base_<x>``),
so a misspelt key, a value of the wrong type or an unknown choice fails at composition with a
message naming the key. :func:`validate_config` then runs the range checks that types cannot
express (the schemas' ``__post_init__``), before any work starts.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, ListConfig, OmegaConf

from vrexp.configs.backbone import BackboneConfig
from vrexp.configs.checklist import ChecklistConfig
from vrexp.configs.checks import ConfigValueError
from vrexp.configs.choices import DatasetKind, Media
from vrexp.configs.dataset import (
    BenchmarkDatasetConfig,
    MediaFolderConfig,
    SynthWorldConfig,
    VisionRewardDBConfig,
)
from vrexp.configs.dpo import DPOConfig
from vrexp.configs.generator import GeneratorConfig
from vrexp.configs.generator_tasks import (
    BuildPairsTaskConfig,
    EvalGeneratorTaskConfig,
    OptimizeGeneratorTaskConfig,
    SampleTaskConfig,
    TrainDPOTaskConfig,
    TrainGeneratorTaskConfig,
)
from vrexp.configs.logger import CSVLoggerConfig, WandbLoggerConfig
from vrexp.configs.root import PathsConfig, VrexpConfig
from vrexp.configs.tasks import (
    AnnotateTaskConfig,
    BenchmarkTaskConfig,
    EvaluateTaskConfig,
    FitWeightsTaskConfig,
    MakeDataTaskConfig,
    PipelineTaskConfig,
    ScoreTaskConfig,
    TrainChecklistTaskConfig,
)
from vrexp.configs.trainer import TrainerConfig

# (group, name, schema): the names the YAML defaults lists refer to.
SCHEMAS: list[tuple[str | None, str, type]] = [
    (None, "base_config", VrexpConfig),
    ("paths", "base_paths", PathsConfig),
    ("dimensions", "base_checklist", ChecklistConfig),
    ("dataset", "base_synthworld", SynthWorldConfig),
    ("dataset", "base_media_folder", MediaFolderConfig),
    ("dataset", "base_benchmark", BenchmarkDatasetConfig),
    ("dataset", "base_visionrewarddb", VisionRewardDBConfig),
    ("task", "base_make_data", MakeDataTaskConfig),
    ("task", "base_train_checklist", TrainChecklistTaskConfig),
    ("task", "base_annotate", AnnotateTaskConfig),
    ("task", "base_fit_weights", FitWeightsTaskConfig),
    ("task", "base_evaluate", EvaluateTaskConfig),
    ("task", "base_pipeline", PipelineTaskConfig),
    ("task", "base_score", ScoreTaskConfig),
    ("task", "base_benchmark", BenchmarkTaskConfig),
    ("task", "base_train_generator", TrainGeneratorTaskConfig),
    ("task", "base_sample", SampleTaskConfig),
    ("task", "base_build_pairs", BuildPairsTaskConfig),
    ("task", "base_train_dpo", TrainDPOTaskConfig),
    ("task", "base_eval_generator", EvalGeneratorTaskConfig),
    ("task", "base_optimize_generator", OptimizeGeneratorTaskConfig),
    ("dpo", "base_dpo", DPOConfig),
    ("logger", "base_wandb", WandbLoggerConfig),
    ("logger", "base_csv", CSVLoggerConfig),
    ("trainer", "base_trainer", TrainerConfig),
    ("backbone", "base_backbone", BackboneConfig),
    ("generator", "base_generator", GeneratorConfig),
]

# Groups whose node is turned into its schema object at validation.
VALIDATED_GROUPS = ("task", "dataset", "dimensions", "backbone", "generator", "dpo", "logger")


def by_media(image: Any, video: Any, *, _root_: DictConfig) -> Any:
    """``${by_media:IMAGE,VIDEO}``: the value for the media of the composed ``dataset``."""
    media = OmegaConf.select(_root_, "dataset.media", default=Media.image)
    return video if Media(media) is Media.video else image


def if_synthworld(synthworld: Any, other: Any, *, _root_: DictConfig) -> Any:
    """``${if_synthworld:A,B}``: A when the composed ``dataset`` is a SynthWorld split (whose
    oracle can label any media against any prompt), else B."""
    kind = OmegaConf.select(_root_, "dataset.kind", default=None)
    return synthworld if str(kind) == DatasetKind.synthworld.value else other


def shared_artifacts(*, _root_: DictConfig) -> str:
    """``${shared_artifacts:}``: the folder where the jobs of a sweep share their trained models,
    annotations and samples: ``paths.artifacts_dir`` / the split's folder under
    ``paths.data_dir`` / the backbone. One per split and backbone, and apart from the data, so
    deleting ``data/`` never deletes a model."""
    split = Path(_root_.dataset.out_dir).resolve()
    data = Path(_root_.paths.data_dir).resolve()
    relative = split.relative_to(data) if split.is_relative_to(data) else Path(_root_.dataset.name)
    return str(Path(_root_.paths.artifacts_dir) / relative / _root_.backbone.name)


def vrexp_data(folder: str) -> str:
    """``${vrexp_data:experiments}``: the absolute path of one of the package's data folders
    (``conf`` or ``experiments``; :mod:`vrexp.resources`), e.g. for Hydra's search path:
    ``hydra.searchpath: [file://${vrexp_data:experiments}]`` works from a checkout, an editable
    install and a wheel alike (``pkg://vrexp.experiments`` does not resolve in editable installs).
    """
    from vrexp import resources

    if folder == "conf":
        return str(resources.config_dir())
    if folder == "experiments":
        found = resources.experiments_dir()
        if found is None:
            raise ValueError("${vrexp_data:experiments}: this vrexp ships no experiments/ folder")
        return str(found)
    raise ValueError(f"${{vrexp_data:{folder}}}: expected conf or experiments")


RESOLVERS = {
    "by_media": by_media,
    "if_synthworld": if_synthworld,
    "shared_artifacts": shared_artifacts,
    "vrexp_data": vrexp_data,
}


def register_configs() -> None:
    """Store the schemas under their ``base_*`` names and register the resolvers."""
    for name, resolver in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)
    store = ConfigStore.instance()
    for group, name, schema in SCHEMAS:
        store.store(group=group, name=name, node=schema)


def validate_config(cfg: DictConfig) -> dict[str, Any]:
    """Check every key and range of ``cfg``; returns the groups as schema objects.

    Raises naming the first bad key: an unknown key (also one added with ``+group.key=``), a
    missing mandatory value, or a value that a schema's ``__post_init__`` refuses.
    """
    check_known_keys(cfg)
    threads = OmegaConf.select(cfg, "cpu_threads", default=None)
    if threads is not None and threads < 1:
        raise ConfigValueError(f"cpu_threads={threads!r} is out of range (at least 1, or null)")
    objects = {}
    for group in VALIDATED_GROUPS:
        node = cfg.get(group)
        if isinstance(node, DictConfig) and OmegaConf.get_type(node) not in (None, dict):
            objects[group] = OmegaConf.to_object(node)
    return objects


def check_known_keys(cfg: Any, where: str = "") -> None:
    """Raise on keys that a schema does not declare.

    Composition already rejects ``group.key=value`` for unknown keys, but Hydra's ``+group.key=value``
    opens the struct flag and would let a typo through silently.
    """
    if isinstance(cfg, DictConfig):
        schema = OmegaConf.get_type(cfg)
        if schema is not None and is_dataclass(schema):
            known = {f.name for f in fields(schema)}
            unknown = sorted(set(cfg.keys()) - known)
            if unknown:
                raise ValueError(
                    f"unknown config key '{where}{unknown[0]}' ({schema.__name__} has no field "
                    f"{unknown[0]!r}; known: {sorted(known)})"
                )
        for key in cfg:
            if key == "hydra":
                continue
            child = cfg._get_node(key)
            if isinstance(child, DictConfig | ListConfig):
                check_known_keys(child, f"{where}{key}.")
    elif isinstance(cfg, ListConfig):
        for i, child in enumerate(cfg._content or []):
            if isinstance(child, DictConfig | ListConfig):
                check_known_keys(child, f"{where}{i}.")
