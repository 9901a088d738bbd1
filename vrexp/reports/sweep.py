"""``SweepTable``: a Hydra callback that turns a multirun's per-job results into one table.

Every job that produces result rows writes ``results.json`` (``{"overrides": ..., "rows": ...}``)
in its output folder. When the sweep ends, the callback gathers them, adds each job's swept values
as columns, writes ``<name>.md/.csv/.png`` in the sweep folder and, if the sweep logs to W&B, logs
the table and plot as one more run of the sweep's group.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from vrexp.data.atomic import atomic_write
from vrexp.reports.tables import PlotSpec, format_markdown, write_table

RESULTS_FILE = "results.json"


def write_results(out_dir: str | Path, rows: list[dict[str, Any]], overrides: list[str]) -> Path:
    """A job's rows, for :class:`SweepTable` (written atomically)."""
    payload = json.dumps({"overrides": overrides, "rows": rows}, indent=2) + "\n"
    return atomic_write(Path(out_dir) / RESULTS_FILE, lambda p: p.write_text(payload))


def job_overrides() -> list[str]:
    """The command-line overrides of the running Hydra job (empty outside Hydra)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    return list(HydraConfig.get().overrides.task)


def _short(key: str) -> str:
    return key.lstrip("+~").split(".")[-1]


def collect_rows(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """All jobs' rows in job order, each prefixed with the values the job overrode."""
    rows = []
    jobs = [p for p in Path(sweep_dir).iterdir() if (p / RESULTS_FILE).is_file()]
    for job in sorted(jobs, key=lambda p: int(p.name) if p.name.isdigit() else p.name):
        payload = json.loads((job / RESULTS_FILE).read_text())
        swept = dict(o.split("=", 1) for o in payload["overrides"] if "=" in o)
        swept = {
            _short(k): v for k, v in swept.items() if not k.startswith(("hydra", "experiment"))
        }
        # The swept values are the experiment's variables: they win over a same-named result.
        rows += [
            {**swept, **{k: v for k, v in row.items() if k not in swept}} for row in payload["rows"]
        ]
    return rows


class SweepTable(Callback):
    def __init__(
        self,
        name: str,
        title: str = "",
        columns: list[str] | None = None,
        plot: dict[str, Any] | None = None,
    ) -> None:
        self.name, self.title, self.columns = name, title, columns
        self.plot = PlotSpec(**plot) if plot else None

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = collect_rows(sweep_dir)
        if not rows:
            Console().print(f"[yellow]{self.name}: no job wrote {RESULTS_FILE}; no table[/]")
            return
        if self.columns:
            rows = [{c: r.get(c, "") for c in self.columns} for r in rows]
        paths = write_table(rows, sweep_dir, self.name, title=self.title, plot=self.plot)
        console = Console()
        console.print(f"\n[bold]{self.title or self.name}[/]")
        console.print(format_markdown(rows))
        console.print("written: " + ", ".join(str(p) for p in paths.values()))
        self._log_wandb(config, sweep_dir, rows, paths)

    def _log_wandb(
        self, config: DictConfig, sweep_dir: Path, rows: list[dict[str, Any]], paths: dict
    ) -> None:
        logger = OmegaConf.select(config, "logger")
        if logger is None or not str(logger.get("_target_", "")).endswith("WandbLogger"):
            return
        import wandb

        if logger.get("offline", True):
            os.environ["WANDB_MODE"] = "offline"
        group = (
            f"{sweep_dir.parent.parent.name}-{sweep_dir.name}"
            if sweep_dir.parent.name == "multiruns"
            else sweep_dir.name
        )
        columns = list(dict.fromkeys(k for r in rows for k in r))
        run = wandb.init(
            project=logger.get("project", "vrexp"),
            entity=logger.get("entity"),
            dir=str(sweep_dir),
            group=group,
            name=f"{self.name}-table",
            job_type="table",
            reinit="finish_previous",
        )
        payload: dict[str, Any] = {
            self.name: wandb.Table(
                columns=columns, data=[[str(r.get(c, "")) for c in columns] for r in rows]
            )
        }
        if "png" in paths:
            payload[f"{self.name}_plot"] = wandb.Image(str(paths["png"]))
        run.log(payload)
        run.finish()
