"""Runs never hang and never lie (docs/reliability.md §5).

Online W&B without a network gives up after ``logger.init_timeout`` and logs offline with a
warning, or stops with a message naming the keys (``logger.on_init_failure=fail``); a job that
raises, inside a Lightning Trainer or not, or that is stopped by SIGTERM, finishes its W&B run with
exit code 1, says so in ``run.log`` and leaves ``failed.json``, which the sweep's table shows.
All with real offline W&B runs, read back from their files.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf

from tests.conftest import ROOT, compose_config, run_cli
from vrexp.reports.sweep import FAILURE_FILE, STATUS, SweepTable, write_failure, write_results
from vrexp.tasks import run_task
from vrexp.tracking import stage_logger
from vrexp.tracking.offline import finished_offline_runs, read_offline_runs

TINY_SPLIT = ["dataset.num_prompts=6", "dataset.renders_per_prompt=2"]
NO_NETWORK_SCRIPT = """
import json, logging, sys, time
from pathlib import Path
from tests.conftest import compose_config
from vrexp.tracking import build_logger, close_logger
from vrexp.tracking.loggers import WandbInitError

logging.basicConfig(level=logging.WARNING)
for mode in ("fail", "offline"):
    root = Path(sys.argv[1]) / mode
    cfg = compose_config(
        root,
        "task=make_data",
        "logger.offline=false",
        "logger.init_timeout=3",
        f"logger.on_init_failure={mode}",
    )
    start = time.monotonic()
    try:
        logger = build_logger(cfg)
        logger.log_metrics({"a": 1.0}, step=0)
        close_logger(logger)
        outcome = {"ok": True}
    except WandbInitError as err:
        outcome = {"error": str(err)}
    print(json.dumps({"mode": mode, "seconds": time.monotonic() - start, **outcome}), flush=True)
"""


def closed_port() -> int:
    """A local port that nothing listens on: connecting is refused at once, as without network."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # an interpreter that imports Lightning and wandb, two 3 s timeouts
def test_online_wandb_without_network_gives_up_in_bounded_time(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env |= {
        "WANDB_API_KEY": "x" * 40,  # a key, so wandb tries the server instead of asking for one
        "WANDB_BASE_URL": f"http://127.0.0.1:{closed_port()}",
        "WANDB_CONFIG_DIR": str(tmp_path / "wandb-config"),
        "WANDB_CACHE_DIR": str(tmp_path / "wandb-cache"),
    }
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(NO_NETWORK_SCRIPT), str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,  # wandb's own default would be 90 s of silence per attempt
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = {r["mode"]: r for r in map(json.loads, done.stdout.strip().splitlines())}
    # fail: a message naming the setting and the ways out, after about the timeout.
    error = outcome["fail"]["error"]
    assert "within logger.init_timeout=3 s" in error and "logger.offline=true" in error
    assert outcome["fail"]["seconds"] < 30
    assert not read_offline_runs(tmp_path / "fail")
    # offline: a warning, then an offline run with what was logged, finished normally.
    assert outcome["offline"]["ok"] and outcome["offline"]["seconds"] < 30
    assert "could not start an online run within logger.init_timeout=3 s" in done.stderr
    assert "logging offline to" in done.stderr and "wandb sync" in done.stderr
    (run,) = finished_offline_runs(tmp_path / "offline")
    assert run.exit_code == 0 and run.logged("a") == [1.0] and run.name == "make_data"
    assert time.monotonic() - start < 140


@pytest.mark.parametrize("override", ["logger.init_timeout=0", "logger.finish_timeout=-1"])
def test_the_timeouts_are_checked_before_work(tmp_path, override):
    from vrexp.configs import ConfigValueError
    from vrexp.tasks import prepare

    cfg = compose_config(tmp_path, "task=make_data", override)
    key = re.escape(override.split("=")[0])
    with pytest.raises(ConfigValueError, match=rf"{key}=-?[0-9.]+ is out of range"):
        prepare(cfg)


def test_both_timeouts_reach_wandb(tmp_path):
    from hydra.utils import instantiate

    def settings(*overrides):  # the logger as build_logger makes it, without starting a run
        cfg = compose_config(tmp_path, "task=make_data", *overrides)
        return instantiate(OmegaConf.to_container(cfg.logger, resolve=True))._wandb_init["settings"]

    chosen = settings("logger.init_timeout=7", "logger.finish_timeout=11")
    assert (chosen.init_timeout, chosen.finish_timeout) == (7.0, 11.0)
    defaults = settings()
    assert (defaults.init_timeout, defaults.finish_timeout) == (30.0, 300.0)


def test_a_job_that_raises_finishes_its_run_failed(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")  # restored afterwards, like what build_logger sets
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONSOLE", "off")
    cfg = compose_config(
        tmp_path, "task=fit_weights", f"task.annotations={tmp_path}/none", *TINY_SPLIT
    )
    with pytest.raises(Exception, match="has no annotation parts"):
        run_task(cfg)
    (run,) = finished_offline_runs(tmp_path / "out")
    assert run.exit_code == 1 and run.name == "fit_weights"
    record = json.loads((tmp_path / "out" / FAILURE_FILE).read_text())
    assert record["task"] == "fit_weights" and "has no annotation parts" in record["error"]


class FailsAtStepTwo(pl.LightningModule):
    """A real module whose third training step raises (a bad batch, an exploding loss)."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, index):
        if index == 2:
            raise RuntimeError("loss is NaN at step 2")
        loss = self.layer(batch[0]).pow(2).mean()
        self.log("loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_a_trainer_that_raises_finishes_its_run_failed(tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONSOLE", "off")
    cfg = compose_config(tmp_path, "task=train_checklist")
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(8, 2)))
    with pytest.raises(RuntimeError, match="NaN at step 2"), stage_logger(cfg) as logger:
        trainer = pl.Trainer(
            logger=logger,
            max_steps=5,
            log_every_n_steps=1,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            accelerator="cpu",
        )
        trainer.fit(FailsAtStepTwo(), data)
    (run,) = finished_offline_runs(tmp_path / "out")
    assert run.exit_code == 1
    assert len(run.logged("loss")) == 2  # what was logged before the failure is kept


def test_the_sweep_table_shows_a_failed_job(tmp_path, caplog):
    sweep = tmp_path / "sweep"
    for job in (0, 1, 2):
        (sweep / str(job) / ".hydra").mkdir(parents=True)
        OmegaConf.save(
            OmegaConf.create([f"seed={job}"]), sweep / str(job) / ".hydra/overrides.yaml"
        )
    write_results(sweep / "0", [{"tau_star": 0.61}], ["seed=0"])
    try:
        raise ValueError("task.l2=-5 is out of range\nmore detail")
    except ValueError as err:
        write_failure(sweep / "1", "fit_weights", err, ["seed=1"])
    # job 2: killed before it could write anything
    rows, paths = SweepTable("t", columns=["seed", "tau_star"]).build(sweep)
    assert rows == [
        {"seed": "0", "tau_star": 0.61, STATUS: "ok"},
        {"seed": "1", "tau_star": "", STATUS: "failed: ValueError: task.l2=-5 is out of range"},
    ]
    md = paths["md"].read_text()
    assert "| seed | tau_star | status |" in md
    assert "| 1 |  | failed: ValueError: task.l2=-5 is out of range |" in md
    assert "missing 1: seed=1 (failed: ValueError" in caplog.text
    assert "missing 2: seed=2" in caplog.text
    # Without failures the table is as before: no status column.
    (sweep / "1" / FAILURE_FILE).unlink()
    rows, _ = SweepTable("t", columns=["seed", "tau_star"]).build(sweep)
    assert rows == [{"seed": "0", "tau_star": 0.61}]


@pytest.mark.slow  # a CLI multirun of two failing jobs
def test_a_failed_sweep_job_is_failed_everywhere(tmp_path):
    result = run_cli(
        "-m",
        "task=fit_weights",
        f"task.annotations={tmp_path}/none-a,{tmp_path}/none-b",
        f"paths.root_dir={tmp_path}",
        *TINY_SPLIT,
        "+hydra.callbacks.table._target_=vrexp.reports.SweepTable",
        "+hydra.callbacks.table.name=t",
        "+hydra.callbacks.table.columns=[annotations]",
    )
    assert result.returncode != 0 and "has no annotation parts" in result.stderr
    (sweep,) = (tmp_path / "logs" / "fit_weights" / "multiruns").iterdir()
    runs = finished_offline_runs(sweep)
    assert [r.exit_code for r in runs] == [1, 1]
    for job in ("0", "1"):
        assert "task fit_weights failed" in (sweep / job / "run.log").read_text()
    md = (sweep / "t.md").read_text()  # built although Hydra skips on_multirun_end
    assert md.count("failed: ") == 2 and "none-a" in md and "none-b" in md


@pytest.mark.slow  # a CLI run, stopped
def test_a_job_stopped_by_sigterm_is_recorded_as_stopped(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    job = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "run.py"),
            "task=make_data",
            "dataset.num_prompts=20000",
            f"paths.root_dir={tmp_path}",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob("logs/make_data/runs/*/wandb/offline-run-*")):
            assert job.poll() is None and time.monotonic() < deadline, job.stderr.read()[-2000:]
            time.sleep(0.5)
        time.sleep(2)  # into the work
        job.send_signal(signal.SIGTERM)
        job.communicate(timeout=60)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode != 0
    (run_dir,) = (tmp_path / "logs" / "make_data" / "runs").iterdir()
    (run,) = finished_offline_runs(run_dir)
    # 1 from vrexp's handler, or 143 (128 + SIGTERM) when W&B's own handler records it first
    assert run.exit_code in (1, 143)
    assert "task make_data stopped (signal SIGTERM)" in (run_dir / "run.log").read_text()
    assert json.loads((run_dir / FAILURE_FILE).read_text())["error"] == "SystemExit: 143"
