"""The main job's data-efficiency curve: VisionReward against the ``bt_head`` baseline as the
number of training pairs grows (the paper's claim that a checklist reward needs few pairs).

For each budget (a number of train pairs, or None for all of them) the pairs are drawn as
``fit_weights`` draws them (:meth:`PreferencePairs.sample` with the run's seed), VisionReward's
weighting is refitted on them from the existing annotations (:func:`fit_weighting`) and the
``bt_head`` baseline is trained on the same pairs (:func:`train_pairwise_baseline`); both are
evaluated on the same test pairs as the main evaluation, with VisionReward minus ``bt_head`` as a
paired interval (the ``vs_visionreward_*`` columns of the ``bt_head`` row). The budget the main
fit used takes the main evaluation's rows as they are.

Each finished budget's rows are written atomically to ``<folder>/budget-<pairs>.json`` with the
settings that made them; a rerun reuses the rows whose settings match, and the ``bt_head``
training of an unfinished budget resumes from its checkpoints.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger
from rich.table import Table

from vrexp.atomic import atomic_write
from vrexp.checklist import Checklist
from vrexp.configs.choices import Baseline
from vrexp.data.annotations import pair_answers, read_annotations
from vrexp.data.pairs import PairBudgetError, check_pair_budget
from vrexp.data.visionrewarddb import preference_pair_parts, preference_records
from vrexp.modules.evaluation import (
    PAIRED,
    method_row,
    paired_columns,
    paired_comparison,
    train_pairwise_baseline,
)
from vrexp.modules.resume import config_manifest
from vrexp.modules.weights import fit_weighting
from vrexp.ranks import is_rank_zero
from vrexp.tracking.loggers import next_stage

log = logging.getLogger(__name__)

KEY = "task.data_efficiency.budgets"
METHODS = ("VisionReward", str(Baseline.bt_head))


def resolve_budgets(budgets: Sequence[int | None], available: int, key: str = KEY) -> list[int]:
    """Each budget's number of train pairs (None: all ``available``); a budget above the train
    part, or two that come to the same pairs, is refused naming its item of ``key``."""
    counts: list[int] = []
    for index, budget in enumerate(budgets):
        count = available if budget is None else budget
        check_pair_budget(count, available, f"{key}[{index}]")
        if count in counts:
            raise PairBudgetError(
                f"{key}[{index}]={budget!r} is {count} train pairs, as "
                f"{key}[{counts.index(count)}] is; list each budget once"
            )
        counts.append(count)
    return counts


def _settings(fit_cfg: DictConfig, eval_cfg: DictConfig, inputs: Any, count: int) -> dict:
    """What one budget's rows depend on, as stored beside them (JSON round-tripped)."""
    fit = OmegaConf.to_container(fit_cfg.task, resolve=True, enum_to_str=True)
    for key in ("out_dir", "model_dir", "num_pairs"):  # the main fit's own budget and folders
        fit.pop(key, None)
    manifest = config_manifest(
        eval_cfg,
        ("task.baseline", "dataset", "dimensions", "backbone", "trainer"),
        fit_weights=fit,
        part=str(eval_cfg.task.part),
        num_resamples=eval_cfg.task.num_resamples,
        train_pairs=count,
        inputs=inputs,
    )
    return json.loads(json.dumps(manifest, sort_keys=True, default=str))


def data_efficiency_curve(
    fit_cfg: DictConfig,
    eval_cfg: DictConfig,
    budgets: Sequence[int | None],
    *,
    folder: str | Path,
    main: dict[str, Any] | None = None,
    inputs: Any = None,
    logger: Logger | None = None,
) -> list[dict[str, Any]]:
    """The curve's rows, two per budget (VisionReward, then ``bt_head``), each with ``budget``
    (its value as text, ``all`` for None) and ``train_pairs``. ``fit_cfg`` is a fit_weights config (the
    weighting's settings, seed), ``eval_cfg`` an evaluate config (annotations, test part,
    baseline training, resamples); ``main`` the main evaluation's summary, whose rows serve the
    budget it was fitted on when it has a ``bt_head`` row; ``inputs`` identifies what made the
    annotations (a rerun with another checklist model recomputes); ``folder`` keeps the rows of
    finished budgets and the checkpoints of the one in training."""
    folder = Path(folder)
    task = eval_cfg.task
    fit = OmegaConf.to_object(fit_cfg.task)
    dataset = OmegaConf.to_object(eval_cfg.dataset)
    checklist = Checklist.from_config(eval_cfg.dimensions)
    parts = preference_pair_parts(dataset, checklist)
    counts = resolve_budgets(budgets, len(parts["train"]))
    test = parts[task.part]
    label = torch.as_tensor(test.label, dtype=torch.float64)
    main_rows = {r["method"]: r for r in (main or {}).get("rows", [])}
    loaded: dict[str, Any] = {}  # annotations and media records, read once if anything is fitted

    rows: list[dict[str, Any]] = []
    for budget, count in zip(budgets, counts, strict=True):
        # One type per column (a W&B table insists): the budget as written, "all" for None.
        head = {"budget": "all" if budget is None else str(budget), "train_pairs": count}
        if main is not None and main.get("num_train_pairs") == count and METHODS[1] in main_rows:
            log.info("data efficiency at %d pairs: the main evaluation's rows", count)
            rows += [{**head, **main_rows[m]} for m in METHODS]
            continue
        stored = folder / f"budget-{count}.json"
        wanted = _settings(fit_cfg, eval_cfg, inputs, count)
        if stored.is_file():
            saved = json.loads(stored.read_text())
            if saved.get("settings") == wanted:
                log.info("data efficiency at %d pairs: reused %s", count, stored)
                rows += saved["rows"]
                continue
            log.info(
                "data efficiency at %d pairs: %s has other settings, recomputed", count, stored
            )
        if not loaded:
            loaded["table"] = read_annotations(task.annotations)
            loaded["records"] = preference_records(dataset, checklist)
        train = parts["train"].sample(budget, fit_cfg.seed)
        reward = fit_weighting(loaded["table"], checklist, train, fit, seed=fit_cfg.seed)
        answers_a, answers_b = pair_answers(
            loaded["table"], reward.checklist, test, fit.hard_answers
        )
        deltas = {METHODS[0]: reward.score(answers_a) - reward.score(answers_b)}
        next_stage(logger)  # each budget's training steps after the last ones logged
        with ExitStack() as held:
            deltas[METHODS[1]], checkpoints = train_pairwise_baseline(
                eval_cfg,
                Baseline.bt_head,
                {"train": train, "val": parts["val"]},
                test,
                loaded["records"],
                output=folder / f"bt_head-{count}",
                fit_pairs={"num_pairs": count, "seed": fit_cfg.seed},
                logger=logger,
                held=held,
                log_prefix=f"data_efficiency/{count}/bt_head",
            )
            budget_rows = [
                {**head, **method_row(m, deltas[m], label, task.num_resamples, eval_cfg.seed)}
                for m in METHODS
            ]
            lead = paired_comparison(*METHODS, deltas, label, task.num_resamples, eval_cfg.seed)
            budget_rows[1].update(paired_columns(lead))
            if is_rank_zero():
                payload = json.dumps({"settings": wanted, "rows": budget_rows}, indent=2) + "\n"
                atomic_write(stored, lambda p, text=payload: p.write_text(text))
            checkpoints.finish()
        rows += budget_rows
    return rows


def curve_table(rows: Sequence[dict[str, Any]]) -> Table:
    """The curve for the log: per budget, each method's tau* and VisionReward's paired lead."""
    table = Table(title="Data efficiency: VisionReward against bt_head on the same pairs")
    columns = ("train pairs", "VisionReward tau*", "bt_head tau*", "Δ tau*", "95% CI", "Δ diff")
    for column in (*columns, "95% CI "):
        table.add_column(column, justify="right")
    by_pairs: dict[int, dict[str, dict]] = {}
    for r in rows:
        by_pairs.setdefault(r["train_pairs"], {})[r["method"]] = r
    for count, methods in by_pairs.items():
        vr, bt = methods[METHODS[0]], methods[METHODS[1]]
        lead = {k.removeprefix(PAIRED): v for k, v in bt.items() if k.startswith(PAIRED)}
        table.add_row(
            str(count),
            f"{vr['tau_star']:.3f} [{vr['tau_star_low']:.3f}, {vr['tau_star_high']:.3f}]",
            f"{bt['tau_star']:.3f} [{bt['tau_star_low']:.3f}, {bt['tau_star_high']:.3f}]",
            f"{lead['tau_star']:+.3f}",
            f"[{lead['tau_star_low']:+.3f}, {lead['tau_star_high']:+.3f}]",
            f"{lead['diff']:+.3f}",
            f"[{lead['diff_low']:+.3f}, {lead['diff_high']:+.3f}]",
        )
    return table
