"""LightningModules: one per trained component."""

from vrexp.modules.checklist import ChecklistModule

__all__ = ["ChecklistModule"]
