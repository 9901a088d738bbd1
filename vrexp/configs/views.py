"""Views of a chain's config as each of its stages sees it."""

from __future__ import annotations

import copy

from omegaconf import DictConfig, open_dict


def stage_view(cfg: DictConfig, stage: str, *, full_checklist: bool = False) -> DictConfig:
    """``cfg`` as the stage's own task would see it: ``task`` is ``task.stages.<stage>``, with its
    schema kept (so its checks run and its enums stay typed). ``full_checklist`` clears
    ``dimensions.drop``: the checklist model is trained and annotated on every question, and an
    ablation takes effect at weighting and evaluation."""
    view = copy.deepcopy(cfg)
    with open_dict(view):
        # An assigned structured node fixes the key's type; deleting first lets a chain's stage
        # (the reward pipeline of optimize_generator) take views of its own stages.
        del view["task"]
        view.task = copy.deepcopy(cfg.task.stages[stage])
        if full_checklist:
            view.dimensions.drop = []
    return view
