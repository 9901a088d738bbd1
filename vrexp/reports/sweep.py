"""``SweepTable``: a Hydra callback that turns a multirun's per-job results into one table.

Every job that produces result rows writes ``results.json`` (``{"overrides": ..., "rows": ...}``)
in its output folder. When the sweep ends, the callback gathers them, adds each job's swept values
as columns, writes ``<name>.md/.csv/.png`` in the sweep folder and, if the sweep logs to W&B, logs
the table and plot as one more run of the sweep's group. With ``publish_dir`` set, the three files
are also copied there (``experiments/results/``: the last full run of each experiment), the ``.md``
headed by the date, the machine, the package versions and the command. With ``head_to_head``, the
jobs' tuned generators are also compared with each other from their judged samples
(:func:`sweep_head_to_head`). ``python -m vrexp.reports SWEEP_DIR`` rebuilds the table of a
finished or partly failed sweep from its folder.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import platform
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import filelock
import numpy as np
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from vrexp.configs.logger import WandbLoggerConfig
from vrexp.configs.versioning import cpu_description, describe_packages, package_versions
from vrexp.data.atomic import atomic_write
from vrexp.reports.tables import PlotSpec, format_markdown, write_table

log = logging.getLogger(__name__)

RESULTS_FILE = "results.json"
FAILURE_FILE = "failed.json"  # written by vrexp.tasks.run_task when a job raises
MULTIRUN_FILE = "multirun.yaml"  # Hydra's record of the sweep: its config and command line
TABLE_LOCK = ".table.lock"  # held while a table is built (jobs of a parallel sweep end together)
STATUS = "status"  # the column that marks failed and unfinished jobs (only when there are some)


def write_results(out_dir: str | Path, rows: list[dict[str, Any]], overrides: list[str]) -> Path:
    """A job's rows, for :class:`SweepTable` (written atomically)."""
    payload = json.dumps({"overrides": overrides, "rows": rows}, indent=2) + "\n"
    return atomic_write(Path(out_dir) / RESULTS_FILE, lambda p: p.write_text(payload))


def clear_failure(out_dir: str | Path) -> None:
    """Forget an earlier attempt's ``failed.json`` in this run folder: a job starting again in
    it (a sweep resumed in its own ``hydra.sweep.dir``) is judged by this attempt alone."""
    (Path(out_dir) / FAILURE_FILE).unlink(missing_ok=True)


def job_record(job: Path) -> dict[str, Any] | None:
    """The job's ``failed.json`` if it has one, else its ``results.json``, else None.

    The failure wins: a task whose stages write ``results.json`` as they go (the reward stage
    of ``optimize_generator`` writes the reward's rows) and that fails later has failed, and its
    stage's rows are not the job's."""
    for name in (FAILURE_FILE, RESULTS_FILE):
        if (job / name).is_file():
            return json.loads((job / name).read_text())
    return None


def write_failure(
    out_dir: str | Path, task: str, error: BaseException, overrides: list[str]
) -> Path:
    """A failed (or stopped) job's record, for :class:`SweepTable`: the task, the error's type
    and first line (written atomically)."""
    lines = str(error).strip().splitlines()
    record = {
        "task": task,
        "overrides": overrides,
        "error": f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__,
    }
    payload = json.dumps(record, indent=2) + "\n"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return atomic_write(out / FAILURE_FILE, lambda p: p.write_text(payload))


def job_overrides() -> list[str]:
    """The command-line overrides of the running Hydra job (empty outside Hydra)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    return list(HydraConfig.get().overrides.task)


def _short(key: str) -> str:
    return key.lstrip("+~").split(".")[-1]


def _swept(overrides: list[str]) -> dict[str, str]:
    swept = dict(o.split("=", 1) for o in overrides if "=" in o)
    return {_short(k): v for k, v in swept.items() if not k.startswith(("hydra", "experiment"))}


def collect_rows(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """All jobs' rows in job order, each prefixed with the values the job overrode.

    A job that failed (its ``failed.json``, from :func:`vrexp.tasks.run_task`) is a row of its
    swept values with ``status`` ``failed: <error>``; then every row has a ``status`` (``ok``).
    Jobs with neither file (killed, or still running) are listed by :func:`missing_jobs`."""
    rows, failed = [], False
    jobs = sorted((p for p in Path(sweep_dir).iterdir() if p.is_dir()), key=_job_order)
    records = [record for record in map(job_record, jobs) if record is not None]
    constant = _constant([_swept(r["overrides"]) for r in records])
    for record in records:
        swept = _swept(record["overrides"])
        if "rows" not in record:
            rows.append({**swept, STATUS: f"failed: {record['error']}"})
            failed = True
            continue
        # The swept values are the experiment's variables: they win over a same-named result.
        # An override that every job shares is a setting, not a variable (`generator=tiny_video`
        # on the command line): a same-named result (the row's `generator`) wins over it.
        wins = set(swept) - constant
        rows += [
            {**swept, **{k: v for k, v in row.items() if k not in wins}} for row in record["rows"]
        ]
    if not failed:
        return rows
    return [{**row, STATUS: row.get(STATUS, "ok")} for row in rows]


def _constant(overrides: list[dict[str, str]]) -> set[str]:
    """The override keys that every job has, with one value (a one-job sweep's are all so)."""
    if not overrides:
        return set()
    first = overrides[0]
    return {k for k, v in first.items() if all(o.get(k, None) == v for o in overrides[1:])}


def _job_order(path: Path) -> tuple[bool, int, str]:
    return (not path.name.isdigit(), int(path.name) if path.name.isdigit() else 0, path.name)


def job_dirs(sweep_dir: str | Path) -> list[Path]:
    """The sweep's job folders (those Hydra started: each has ``.hydra/``), in job order."""
    jobs = [p for p in Path(sweep_dir).iterdir() if (p / ".hydra").is_dir()]
    return sorted(jobs, key=_job_order)


def missing_jobs(sweep_dir: str | Path, num_jobs: int | None = None) -> list[str]:
    """Jobs without results (failed, killed or never started), each as ``NAME: overrides``.

    ``num_jobs``, when known, counts jobs numbered 0 .. num_jobs - 1 that have no folder at all.
    """
    sweep_dir = Path(sweep_dir)
    names = [p.name for p in job_dirs(sweep_dir)]
    if num_jobs is not None:
        names += [str(i) for i in range(num_jobs) if str(i) not in names]
    missing = []
    for name in sorted(set(names), key=lambda n: (not n.isdigit(), int(n) if n.isdigit() else n)):
        job = sweep_dir / name
        record = job_record(job)
        if record is not None and "rows" in record:
            continue
        overrides = job / ".hydra" / "overrides.yaml"
        what = " ".join(OmegaConf.load(overrides)) if overrides.is_file() else "(never started)"
        if record is not None:  # its failed.json
            what += f" (failed: {record['error']})"
        missing.append(f"{name}: {what}")
    return missing


def _job_label(swept: dict[str, str], constant: set[str], job: Path) -> str:
    varying = {k: v for k, v in swept.items() if k not in constant}
    if len(varying) == 1:
        return next(iter(varying.values()))
    return " ".join(f"{k}={v}" for k, v in varying.items()) or f"job {job.name}"


def sweep_head_to_head(sweep_dir: str | Path, num_resamples: int = 1000) -> list[dict[str, Any]]:
    """The tuned generators of a sweep's jobs compared head to head, sample by sample.

    Each finished job's ``eval/eval_samples.parquet`` (where ``optimize_generator``'s evaluation
    writes it) holds the base and the job's tuned generator on the evaluation's prompts and noise.
    Jobs are named by what they swept (``mpo``, ``total``); every later job's generator is compared
    with every earlier one's (:func:`vrexp.metrics.generators.head_to_head`). The jobs must
    share the evaluation's rows and the base's scores, else their samples are not paired and
    this raises, naming the jobs."""
    # Here, not at the top: torchmetrics is slow to import, and only such a sweep needs it.
    from vrexp.metrics.generators import head_to_head
    from vrexp.reports.eval_samples import (
        EVAL_DIR,
        EVAL_SAMPLES_FILE,
        check_same_rows,
        groups_of,
        read_eval_samples,
    )

    jobs = []
    for job in job_dirs(sweep_dir):
        record = job_record(job)
        if record is None or "rows" not in record:
            continue
        path = job / EVAL_DIR / EVAL_SAMPLES_FILE
        if not path.is_file():
            log.warning("job %s has no %s; it is left out of the head-to-head", job.name, path)
            continue
        jobs.append((job, record, *read_eval_samples(path)))
    if len(jobs) < 2:
        return []
    constant = _constant([_swept(record["overrides"]) for _, record, _, _ in jobs])
    first, _, first_rows, first_generators = jobs[0]
    generators = {}
    for job, record, rows, judged in jobs:
        check_same_rows(f"job {job.name}", rows, first_rows, f"job {first.name}")
        base, reference = judged.get("base"), first_generators.get("base")
        if base is None or reference is None or not _same_scores(base, reference):
            raise ValueError(
                f"jobs {first.name} and {job.name} do not share one base generator's samples; "
                "a head-to-head compares generators tuned from the same base"
            )
        label = _job_label(_swept(record["overrides"]), constant, job)
        tuned = {k: v for k, v in judged.items() if k != "base"}
        for name, samples in tuned.items():
            generators[label if len(tuned) == 1 else f"{label}/{name}"] = samples
    return head_to_head(generators, groups_of(first_rows), num_resamples=num_resamples)


def _same_scores(a: Any, b: Any) -> bool:  # two JudgedSamples
    same = np.allclose(a.total, b.total, rtol=0, atol=1e-5)
    if a.utility is not None and b.utility is not None:
        same = same and np.allclose(a.utility, b.utility, rtol=0, atol=1e-9)
    return bool(same)


def provenance(command: str) -> str:
    """The header line of a published table: date, machine (its CPU model and the instruction
    set of torch's CPU kernels), the versions of Python and the packages that fix its numbers
    (torch, transformers, Lightning, tokenizers), and command."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cpu = cpu_description()
    machine = (
        f"{platform.node()} ({os.cpu_count()} CPUs, {platform.machine()}, {cpu['model']}, "
        f"torch CPU kernels {cpu['torch_capability']})"
    )
    versions = package_versions()
    stack = f"Python {versions['python']}, {describe_packages(versions)}"
    return f"_Run {now} on {machine} with {stack}: `{command}`_"


def publish(paths: dict[str, Path], publish_dir: str | Path, command: str) -> dict[str, Path]:
    """Copy a table's files to ``publish_dir``; the ``.md`` gains the :func:`provenance` line."""
    publish_dir = Path(publish_dir)
    publish_dir.mkdir(parents=True, exist_ok=True)
    out = {}
    for kind, path in paths.items():
        target = publish_dir / Path(path).name
        if kind == "md" or kind.endswith("_md"):
            text = provenance(command) + "\n\n" + Path(path).read_text()
            atomic_write(target, lambda p, text=text: p.write_text(text))
        else:
            atomic_write(target, lambda p, path=path: shutil.copyfile(path, p))
        out[kind] = target
    return out


def layout_rows(
    rows: list[dict[str, Any]], index: str, columns: str, values: dict[str, list[str]]
) -> list[dict[str, Any]]:
    """``rows`` laid out wide: one row per value of ``index`` (in order of appearance), and for
    each value ``c`` of ``columns`` named in ``values``, the cells ``"<c> <metric>"`` of its
    metrics. A failed job's cells stay empty and its error is in the ``status`` cell."""
    wide: dict[Any, dict[str, Any]] = {}
    for row in rows:
        out = wide.setdefault(row.get(index, ""), {index: row.get(index, "")})
        column = str(row.get(columns, ""))
        for metric in values.get(column, []):
            if row.get(metric) not in (None, ""):
                out[f"{column} {metric}"] = row[metric]
        if str(row.get(STATUS, "ok")) != "ok":
            errors = [e for e in [out.get(STATUS), f"{column}: {row[STATUS]}"] if e]
            out[STATUS] = "; ".join(errors)
    ordered = [f"{c} {m}" for c, metrics in values.items() for m in metrics]
    return [
        {
            index: out[index],
            **{k: out.get(k, "") for k in ordered},
            **({STATUS: out.get(STATUS, "ok")} if any(STATUS in o for o in wide.values()) else {}),
        }
        for out in wide.values()
    ]


def expand_columns(columns: list[str], rows: list[dict[str, Any]]) -> list[str]:
    """``columns`` with each pattern (``reward/*``: :mod:`fnmatch`, a ``*`` or ``?`` in it)
    replaced by the rows' matching columns in order of first appearance, so one experiment's
    table lists whatever dimensions the composed checklist has (image or video). A pattern no
    row matches adds nothing."""
    present = list(dict.fromkeys(k for row in rows for k in row))
    out: list[str] = []
    for column in columns:
        if "*" in column or "?" in column:
            out += [k for k in present if fnmatch.fnmatchcase(k, column) and k not in columns]
        else:
            out.append(column)
    return list(dict.fromkeys(out))


def sweep_command(config: DictConfig) -> str:
    """``python run.py OVERRIDES`` of the sweep, from its Hydra config."""
    overrides = OmegaConf.select(config, "hydra.overrides.task", default=None) or []
    return " ".join(["python run.py", *overrides])


class SweepTable(Callback):
    def __init__(
        self,
        name: str,
        title: str = "",
        columns: list[str] | None = None,
        plot: dict[str, Any] | None = None,
        publish_dir: str | None = None,
        layout: dict[str, Any] | None = None,
        head_to_head: bool = False,
    ) -> None:
        self.name, self.title, self.columns = name, title, columns
        # A second, wide table (NAME_layout): one row per `index` value, the chosen metrics of
        # each `columns` value side by side, as a paper's table lays them out.
        self.layout = layout
        # A third table (NAME_head_to_head): the jobs' tuned generators against each other,
        # sample by sample (sweep_head_to_head).
        self.head_to_head = head_to_head
        self.plot = PlotSpec(**plot) if plot else None
        self.publish_dir = publish_dir  # relative paths are relative to the cwd
        self._failed = False  # a job of this sweep has failed (see on_job_end)

    def build(
        self,
        sweep_dir: str | Path,
        command: str = "",
        publish_dir: str | Path | None = None,
        num_jobs: int | None = None,
    ) -> tuple[list[dict[str, Any]], dict[str, Path]]:
        """Write the table of the jobs' results in ``sweep_dir`` (and publish it); jobs without
        results are listed as missing. No rows, no files."""
        sweep_dir = Path(sweep_dir)
        # Jobs of a parallel sweep may end, and build, at the same moment: one at a time.
        with filelock.FileLock(sweep_dir / TABLE_LOCK):
            return self._build(sweep_dir, command, publish_dir, num_jobs)

    def _build(
        self,
        sweep_dir: Path,
        command: str,
        publish_dir: str | Path | None,
        num_jobs: int | None,
    ) -> tuple[list[dict[str, Any]], dict[str, Path]]:
        missing = missing_jobs(sweep_dir, num_jobs)
        if missing:
            log.warning("%s: %d job(s) without %s:", self.name, len(missing), RESULTS_FILE)
            for job in missing:
                log.warning("  missing %s", job)
        rows = collect_rows(sweep_dir)
        if not rows:
            log.warning("%s: no job wrote %s; no table", self.name, RESULTS_FILE)
            return rows, {}
        if self.columns:
            columns = expand_columns(self.columns, rows)
            keep = [*columns, *([STATUS] if any(STATUS in r for r in rows) else [])]
            rows = [{c: r.get(c, "") for c in keep} for r in rows]
        paths = write_table(rows, sweep_dir, self.name, title=self.title, plot=self.plot)
        log.info("%s\n%s", self.title or self.name, format_markdown(rows))
        if self.layout:
            wide = layout_rows(rows, **self.layout)
            for kind, path in write_table(
                wide, sweep_dir, f"{self.name}_layout", title=self.title
            ).items():
                paths[f"layout_{kind}"] = path
            log.info("%s, laid out\n%s", self.title or self.name, format_markdown(wide))
        if self.head_to_head:
            paths |= self._head_to_head(sweep_dir)
        log.info("written: %s", ", ".join(str(p) for p in paths.values()))
        publish_dir = publish_dir or self.publish_dir
        if publish_dir:
            published = publish(paths, publish_dir, command)
            log.info("published: %s", ", ".join(str(p) for p in published.values()))
        return rows, paths

    def _head_to_head(self, sweep_dir: Path) -> dict[str, Path]:
        try:
            matches = sweep_head_to_head(sweep_dir)
        except ValueError as err:  # the sweep's own table still stands
            log.error("%s: no head-to-head table: %s", self.name, err)
            return {}
        if not matches:
            return {}
        title = f"{self.title or self.name}: head to head (generator over against)"
        written = write_table(matches, sweep_dir, f"{self.name}_head_to_head", title=title)
        log.info("%s\n%s", title, format_markdown(matches))
        return {f"head_to_head_{kind}": path for kind, path in written.items()}

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        """Hydra's sweeper stops at the end of a sweep with a failed job and never calls
        ``on_multirun_end``: from the first failure on, the table is rebuilt after every job, so
        such a sweep still leaves one, the failure marked in its ``status`` column."""
        from hydra.core.utils import JobStatus
        from hydra.types import RunMode

        sweep_dir = OmegaConf.select(config, "hydra.sweep.dir", default=None)
        multirun = OmegaConf.select(config, "hydra.mode") == RunMode.MULTIRUN
        if not (sweep_dir and multirun):
            return
        # Under a parallel launcher (joblib, submitit) each job ends in its own process, so a
        # failure is read from the sweep folder, not remembered: every job that ends after one
        # rebuilds the table, and the last to do so has seen every job's files.
        self._failed = (
            self._failed
            or job_return.status == JobStatus.FAILED
            or any(Path(sweep_dir).glob(f"*/{FAILURE_FILE}"))
        )
        if self._failed:
            # The sweep's command line, not this job's (its swept values are single values here).
            multirun = Path(sweep_dir) / MULTIRUN_FILE
            sweep = OmegaConf.load(multirun) if multirun.is_file() else config
            self.build(sweep_dir, command=sweep_command(sweep))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows, paths = self.build(sweep_dir, command=sweep_command(config))
        if rows:
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
        timeout = float(logger.get("init_timeout", WandbLoggerConfig.init_timeout))
        finish = float(logger.get("finish_timeout", WandbLoggerConfig.finish_timeout))
        init = {
            "project": logger.get("project", "vrexp"),
            "entity": logger.get("entity"),
            "dir": str(sweep_dir),
            "group": group,
            "name": f"{self.name}-table",
            "job_type": "table",
            "reinit": "finish_previous",
            "settings": wandb.Settings(init_timeout=timeout, finish_timeout=finish),
        }
        try:
            run = wandb.init(**init)
        except wandb.Error as err:  # as the jobs' logger does (vrexp.tracking.QuietWandbLogger)
            if str(logger.get("on_init_failure", "offline")) == "fail":
                log.error("%s: W&B run not started (%s); the table files stand", self.name, err)
                return
            log.warning(
                "%s: W&B could not start an online run within logger.init_timeout=%g s (%s); "
                "logging the table offline in %s",
                self.name,
                timeout,
                str(err).strip().splitlines()[0],
                sweep_dir,
            )
            run = wandb.init(**init, mode="offline")
        payload: dict[str, Any] = {
            self.name: wandb.Table(
                columns=columns, data=[[str(r.get(c, "")) for c in columns] for r in rows]
            )
        }
        if "png" in paths:
            payload[f"{self.name}_plot"] = wandb.Image(str(paths["png"]))
        run.log(payload)
        run.finish()
