"""LightningModules: one per trained component."""

from vrexp.modules.checklist import ChecklistModule
from vrexp.modules.generator import DPOModule, GeneratorModule
from vrexp.modules.weights import WeightModule

__all__ = ["ChecklistModule", "DPOModule", "GeneratorModule", "WeightModule"]
