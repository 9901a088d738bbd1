"""Sweeps on Hydra's launchers: jobs in other processes (joblib) and through submitit's path
(``submitit_local``, the same code as ``submitit_slurm`` without a cluster), and Optuna's search
over the ``hparams_search`` group. docs/sweeps.md.

Each sweep is a real ``python run.py -m`` of the cheapest task (``make_data`` at ``debug=smoke``);
the tests check that every job ran in its own process (the pid ``run_task`` logs in each
``run.log``), wrote its outputs and its own offline W&B run, and that the sweep's table has a row
per job, a failed job marked in its ``status`` column.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.conftest import ROOT, compose_config, compose_with_hydra
from vrexp.tracking.offline import finished_offline_runs

TABLE = [
    "+hydra.callbacks.table._target_=vrexp.reports.SweepTable",
    "+hydra.callbacks.table.name=tiny",
    "+hydra.callbacks.table.columns=[seed,num_prompts,num_items,num_pairs]",
]


def sweep(
    tmp_path: Path, *args: str, prompts: str = "4", timeout: int = 400
) -> tuple[int, subprocess.Popen, str]:
    """``python run.py -m task=make_data ...`` as a user types it; its exit code, process and
    output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env["OMP_NUM_THREADS"] = "1"  # toy tensors: see tests.conftest.one_thread
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "run.py"),
            "-m",
            "task=make_data",
            "debug=smoke",
            f"dataset.num_prompts={prompts}",
            f"paths.root_dir={tmp_path}",
            *TABLE,
            *args,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, proc, out


def job_pids(sweep_dir: Path, jobs: int) -> list[int]:
    pids = []
    for job in range(jobs):
        log = (sweep_dir / str(job) / "run.log").read_text()
        (pid,) = re.findall(r"task make_data: pid (\d+) on ", log)
        pids.append(int(pid))
    return pids


def table(sweep_dir: Path) -> list[dict[str, str]]:
    with (sweep_dir / "tiny.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.mark.slow  # two CLI sweeps' worth of process starts (about a minute here)
def test_joblib_runs_the_jobs_as_local_processes(tmp_path):
    code, proc, out = sweep(tmp_path, "dataset.seed=3,4", "hydra/launcher=joblib")
    assert code == 0, out[-3000:]
    (sweep_dir,) = (tmp_path / "logs" / "make_data" / "multiruns").iterdir()
    pids = job_pids(sweep_dir, 2)
    assert len(set(pids)) == 2 and proc.pid not in pids  # two worker processes, not the parent
    for job in ("0", "1"):
        assert (sweep_dir / job / "results.json").is_file()
    rows = table(sweep_dir)
    assert [(r["seed"], r["num_items"], r["num_pairs"]) for r in rows] == [
        ("3", "12", "12"),
        ("4", "12", "12"),
    ]
    runs = finished_offline_runs(sweep_dir)  # the jobs' runs and the table's, in one group
    assert len({r.group for r in runs}) == 1
    assert sorted(r.job_type for r in runs) == ["make_data", "make_data", "table"]
    runs = [r for r in runs if r.job_type == "make_data"]
    assert len({r.run_id for r in runs}) == 2
    assert sorted(r.config["dataset"]["seed"] for r in runs) == [3, 4]
    assert all(r.exit_code == 0 for r in runs)
    for seed in (3, 4):  # each job rendered its own split
        assert (
            tmp_path / "data" / "synthworld_image" / f"seed{seed}-n4x3" / "summary.json"
        ).is_file()


@pytest.mark.slow  # as above
def test_submitit_local_runs_the_slurm_path_and_records_a_failed_job(tmp_path):
    # Job 1 asks for an empty split: refused at validation, recorded in its failed.json.
    code, proc, out = sweep(
        tmp_path,
        "dataset.seed=3",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=10",
        "logger=none",  # the joblib test checks W&B per job; here it would only add seconds
        prompts="4,0",
    )
    assert code == 1, out[-3000:]  # Hydra reports the failed job once every job has ended
    (sweep_dir,) = (tmp_path / "logs" / "make_data" / "multiruns").iterdir()
    pids = job_pids(sweep_dir, 2)
    assert len(set(pids)) == 2 and proc.pid not in pids
    # submitit's own folder: a submitted job per sweep job, each with its pickled result.
    submitted = [p for p in (sweep_dir / ".submitit").iterdir() if p.name.isdigit()]
    assert len(submitted) == 2 and all(list(p.glob("*_result.pkl")) for p in submitted)
    assert (sweep_dir / "0" / "results.json").is_file()
    assert "num_prompts" in (sweep_dir / "1" / "failed.json").read_text()
    ok, failed = table(sweep_dir)
    assert (ok["num_prompts"], ok["num_items"], ok["status"]) == ("4", "12", "ok")
    assert failed["num_prompts"] == "0" and failed["status"].startswith("failed: ")
    assert "num_prompts" in failed["status"]


def test_the_slurm_launcher_takes_its_keys_from_config(tmp_path, monkeypatch):
    monkeypatch.setenv("VREXP_SLURM_PARTITION", "gpu-long")
    cfg = compose_with_hydra(tmp_path, "hydra/launcher=slurm", "hydra.launcher.gpus_per_node=4")
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["_target_"].endswith("submitit_launcher.SlurmLauncher")
    assert launcher["partition"] == "gpu-long" and launcher["gpus_per_node"] == 4
    assert launcher["timeout_min"] == 240 and launcher["array_parallelism"] == 16
    assert launcher["name"] == "vrexp-pipeline"


def test_a_job_ending_in_its_own_process_after_a_failure_rebuilds_the_table(tmp_path):
    """Under joblib or submitit each job's callback is a fresh copy that never saw the failure:
    the failure is read from the sweep folder, so the last job to end leaves the whole table."""
    from hydra.core.utils import JobReturn, JobStatus
    from hydra.types import RunMode

    from vrexp.reports.sweep import SweepTable, write_failure, write_results

    sweep_dir = tmp_path / "sweep"
    write_failure(sweep_dir / "0", "make_data", ValueError("dataset.num_prompts=0"), ["seed=0"])
    write_results(sweep_dir / "1", [{"num_items": 12}], ["seed=1"])
    job = {"sweep": {"dir": str(sweep_dir)}, "mode": RunMode.MULTIRUN}
    config = OmegaConf.create({"hydra": {**job, "overrides": {"task": ["seed=1", "x=2"]}}})
    # Hydra's multirun.yaml holds the sweep's command line: the published header names it.
    OmegaConf.save(
        {"hydra": {"overrides": {"task": ["seed=0,1", "x=2"]}}}, sweep_dir / "multirun.yaml"
    )
    done = JobReturn(status=JobStatus.COMPLETED, _return_value=None)
    published = tmp_path / "published"
    SweepTable("tiny", columns=["seed", "num_items"], publish_dir=str(published)).on_job_end(
        config, done
    )
    assert "`python run.py seed=0,1 x=2`" in (published / "tiny.md").read_text().splitlines()[0]
    assert table(sweep_dir) == [
        {"seed": "0", "num_items": "", "status": "failed: ValueError: dataset.num_prompts=0"},
        {"seed": "1", "num_items": "12", "status": "ok"},
    ]
    (sweep_dir / "tiny.csv").unlink()
    (
        sweep_dir / "0" / "failed.json"
    ).unlink()  # no failure: jobs leave the table to the sweep's end
    SweepTable("tiny").on_job_end(config, done)
    assert not (sweep_dir / "tiny.csv").exists()


# ------------------------------------------------------------------------------ hparams_search
def compose_search(tmp_path: Path, name: str, *overrides: str):
    return compose_with_hydra(tmp_path, f"hparams_search={name}", *overrides)


@pytest.mark.parametrize(
    ("name", "task", "params"),
    [
        (
            "checklist_optuna",
            "train_checklist",
            ["task.lr", "task.vision_lr_scale", "task.batch_size"],
        ),
        (
            "dpo_optuna",
            "optimize_generator",
            ["dpo.beta", "task.stages.train_dpo.lr", "dpo.threshold"],
        ),
    ],
)
def test_each_search_sweeps_real_keys_of_its_task_and_maximises_its_metric(
    name, task, params, tmp_path
):
    from vrexp.tasks import METRICS, prepare

    cfg = compose_search(tmp_path, name, "debug=smoke")
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and cfg.hydra.mode.name == "MULTIRUN"
    assert sweeper.direction == "maximize" and sweeper.sampler.seed == cfg.seed == 0
    assert list(sweeper.params) == params
    assert cfg.task.name == task and task in METRICS  # the task returns a metric to maximise
    for key in params:  # every swept key is a number of the task's validated config
        assert isinstance(OmegaConf.select(cfg, key, throw_on_missing=True), int | float), key
    # A trial's values pass the schema's checks (a search space outside them fails every trial).
    low = {"task.lr": 1e-4, "task.vision_lr_scale": 0.0, "task.batch_size": 8}
    low |= {"dpo.beta": 50, "task.stages.train_dpo.lr": 1e-4, "dpo.threshold": 0.0}
    trial = compose_config(
        tmp_path, f"hparams_search={name}", "debug=smoke", *(f"{k}={low[k]}" for k in params)
    )
    groups = prepare(trial)
    assert groups["task"].name == task


@pytest.mark.slow  # three smoke trainings of the checklist VLM (about a minute)
def test_an_optuna_search_of_three_trials_names_the_best(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env["OMP_NUM_THREADS"] = "1"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "run.py"),
            "hparams_search=checklist_optuna",
            "hydra.sweeper.n_trials=3",
            "debug=smoke",
            "logger=none",
            f"paths.root_dir={tmp_path}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert "alembic" not in out  # conf/hydra/hydra_logging/vrexp.yaml quiets its INFO lines
    (sweep_dir,) = (tmp_path / "logs" / "train_checklist" / "multiruns").iterdir()
    trials = {}
    for job in sorted(p for p in sweep_dir.iterdir() if p.name.isdigit()):
        swept = dict(o.split("=", 1) for o in OmegaConf.load(job / ".hydra" / "overrides.yaml"))
        params = (
            float(swept["task.lr"]),
            float(swept["task.vision_lr_scale"]),
            int(swept["task.batch_size"]),
        )
        lr, scale, batch = params
        assert 1e-4 <= lr <= 3e-3 and 0.0 <= scale <= 1.0 and batch in (8, 16, 32)
        accuracy = OmegaConf.load(job / "checklist_model" / "checklist_accuracy.json")
        trials[params] = accuracy.best_val_acc  # what run_task returned to Optuna
    assert len(trials) == 3  # three trials, each with its own parameters
    best = OmegaConf.load(sweep_dir / "optimization_results.yaml")
    assert best.best_value == pytest.approx(max(trials.values()))
    named = tuple(
        best.best_params[k] for k in ("task.lr", "task.vision_lr_scale", "task.batch_size")
    )
    assert named == max(trials, key=trials.get)


@pytest.mark.slow  # the generator chain twice at smoke size (about a minute)
@pytest.mark.heavy  # CI's budget; the checklist search runs the same sweeper and its best
def test_a_dpo_search_reuses_the_shared_artifacts_and_names_the_best(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env["OMP_NUM_THREADS"] = "1"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "run.py"),
            "hparams_search=dpo_optuna",
            "hydra.sweeper.n_trials=2",
            "debug=smoke",
            "dpo.threshold=0.0",  # fixed: the smoke reward hardly separates candidates
            "logger=none",
            f"paths.root_dir={tmp_path}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    (sweep_dir,) = (tmp_path / "logs" / "optimize_generator" / "multiruns").iterdir()
    rates = {}
    for job in ("0", "1"):
        swept = dict(
            o.split("=", 1) for o in OmegaConf.load(sweep_dir / job / ".hydra/overrides.yaml")
        )
        beta, lr = float(swept["dpo.beta"]), float(swept["task.stages.train_dpo.lr"])
        assert 50 <= beta <= 5000 and 1e-4 <= lr <= 1e-2
        rows = json.loads((sweep_dir / job / "results.json").read_text())["rows"]
        rates[(beta, lr)] = rows[-1]["oracle_win_rate"]  # what run_task returned to Optuna
        assert 0.0 <= rates[(beta, lr)] <= 1.0
    assert len(rates) == 2
    for job, reused in (("0", False), ("1", True)):  # the second trial trained nothing again
        log = (sweep_dir / job / "run.log").read_text()
        assert ("reused the checklist model in" in log) == reused
        assert ("reused the base generator in" in log) == reused
        assert ("reused the reward in" in log) == reused  # never rewritten under a reader
    best = OmegaConf.load(sweep_dir / "optimization_results.yaml")
    assert best.best_value == pytest.approx(max(rates.values()))
    assert set(best.best_params) == {"dpo.beta", "task.stages.train_dpo.lr"}
