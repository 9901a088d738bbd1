"""The experiments in ``experiments/``: each is a sweep ending in a table, each runs end to end at
``debug=smoke`` size, ``debug=smoke`` shrinks every task, a sweep's table can be rebuilt from its
folder (``python -m vrexp.reports``), and ``run.py --help`` lists tasks and experiments."""

from __future__ import annotations

import csv
import json
import logging
import math
import platform
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import instantiate
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from tests.conftest import CONF, EXPERIMENTS, ROOT, compose_config, compose_with_hydra, run_cli
from vrexp.checklist import Checklist
from vrexp.data.checklist_data import split_by_prompt
from vrexp.data.synthworld.split import prompt_spec
from vrexp.metrics.generators import JudgedSamples
from vrexp.modules.evaluation import PAIRED
from vrexp.reports import SweepTable, collect_rows
from vrexp.reports.__main__ import num_jobs, sweep_tables
from vrexp.reports.eval_samples import (
    EVAL_DIR,
    EVAL_SAMPLES_FILE,
    read_eval_samples,
    write_eval_samples,
)
from vrexp.reports.sweep import (
    RESULTS_FILE,
    missing_jobs,
    sweep_head_to_head,
    write_failure,
    write_results,
)
from vrexp.tasks import run_task

NAMES = sorted(p.stem for p in EXPERIMENTS.glob("*.yaml"))
TASKS = sorted(p.stem for p in (CONF / "task").glob("*.yaml"))


def test_the_experiments_are_the_experiment_group():
    assert {"table2_synthworld", "table4_mpo_vs_dpo", "fig11_curves"} <= set(NAMES)
    assert not (CONF / "experiment").exists()  # one place: experiments/


@pytest.mark.parametrize("experiment", NAMES)
def test_experiments_are_sweeps_that_end_in_a_table(experiment, tmp_path):
    cfg = compose_with_hydra(tmp_path, f"experiment={experiment}")
    # experiments/README.md's publishing command: the key exists, so no `+` is needed
    published = compose_with_hydra(
        tmp_path, f"experiment={experiment}", f"hydra.callbacks.table.publish_dir={tmp_path}"
    )
    assert instantiate(published.hydra.callbacks.table).publish_dir == str(tmp_path)
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    assert cfg.hydra.sweeper.params, "an experiment sweeps something"
    # The sweep parses with Hydra's override grammar, and every job it launches composes.
    parser = OverridesParser.create()
    sweeps = parser.parse_overrides([f"{k}={v}" for k, v in cfg.hydra.sweeper.params.items()])
    for sweep in sweeps:
        values = list(sweep.sweep_string_iterator())
        assert len(values) >= 2, sweep.input_line
        for value in values:
            job = compose_config(
                tmp_path, f"experiment={experiment}", f"{sweep.get_key_element()}={value}"
            )
            Checklist.from_config(job.dimensions)  # e.g. a dropped dimension must exist
    callback = instantiate(cfg.hydra.callbacks.table)
    assert isinstance(callback, SweepTable) and callback.name == experiment
    assert callback.publish_dir is None


@pytest.mark.parametrize(
    "experiment",
    [n for n in NAMES if n not in ("table2_synthworld", "table2_real", "table11_regression_size")],
)
def test_an_experiment_run_on_video_publishes_beside_the_image_one(experiment, tmp_path):
    # (the image run's name is the experiment's: test_experiments_are_sweeps_that_end_in_a_table)
    video = ["dataset=synthworld_video", "generator=tiny_video"]
    cfg = compose_with_hydra(tmp_path, f"experiment={experiment}", *video)
    assert instantiate(cfg.hydra.callbacks.table).name == f"{experiment}_video"


def synthworld_train_pairs(cfg) -> int:
    """The train part's judged pairs of a SynthWorld split, counted from its prompts alone (the
    partition is by prompt text), without rendering."""
    dataset = OmegaConf.to_object(cfg.dataset)
    r = dataset.renders_per_prompt
    prompts = [prompt_spec(dataset, cfg.dataset.media, i).text for i in range(dataset.num_prompts)]
    return len(split_by_prompt(prompts, dataset.partition)["train"]) * r * (r - 1) // 2


FIT_BUDGET = {
    "pipeline": "task.stages.fit_weights.num_pairs",
    "optimize_generator": "task.stages.reward.stages.fit_weights.num_pairs",
}


@pytest.mark.parametrize("experiment", [n for n in NAMES if n != "table2_real"])
def test_every_experiments_split_holds_its_regression_pairs(experiment, tmp_path):
    # A budget beyond the train part fails at fit time, after the split and the checklist model.
    base = compose_with_hydra(tmp_path, f"experiment={experiment}")
    key, sweep = FIT_BUDGET[base.task.name], dict(base.hydra.sweeper.params)
    for dataset in str(sweep.get("dataset", base.dataset.name)).split(","):
        cfg = compose_config(tmp_path, f"experiment={experiment}", f"dataset={dataset}")
        swept = str(sweep[key]).split(",") if key in sweep else [OmegaConf.select(cfg, key)]
        assert synthworld_train_pairs(cfg) >= max(map(int, swept)), (experiment, dataset)


@pytest.mark.slow  # CLI runs
def test_an_experiment_is_found_from_any_cwd(tmp_path):
    result = run_cli("experiment=table5_dominance", "--cfg", "job", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "name: optimize_generator" in result.stdout and "report: pairs" in result.stdout


# ------------------------------------------------------------------------------ debug=smoke
def test_every_task_has_smoke_sizes_with_step_budgets_only():
    smoke = CONF / "debug" / "tasks" / "smoke"
    assert sorted(p.stem for p in smoke.glob("*.yaml")) == TASKS
    for path in (CONF / "debug").rglob("*.yaml"):
        assert "max_time" not in path.read_text(), f"{path}: smoke budgets are steps, not time"


@pytest.mark.parametrize("task", TASKS)
def test_debug_smoke_shrinks_every_task(task, tmp_path):
    cfg = OmegaConf.to_container(
        compose_config(tmp_path, f"task={task}", "debug=smoke").task, resolve=True
    )
    full = OmegaConf.to_container(compose_config(tmp_path, f"task={task}").task, resolve=True)

    def budgets(node, path=""):
        if isinstance(node, dict):
            for key, value in node.items():
                yield from budgets(value, f"{path}.{key}")
        elif path.endswith(("max_epochs", "max_steps", "num_prompts", "num_resamples")):
            yield path, node

    small, large = dict(budgets(cfg)), dict(budgets(full))
    changed = [k for k in small if small[k] != large[k]]
    shrinks = {"make_data", "annotate", "build_pairs", "score"}  # nothing of their own to shrink
    assert changed or task in shrinks, task
    for key in changed:
        assert small[key] != -1 and (large[key] == -1 or small[key] < large[key]), key


def test_debug_smoke_follows_the_experiments_task(tmp_path):
    cfg = compose_config(tmp_path, "experiment=table4_mpo_vs_dpo", "debug=smoke")
    reward = cfg.task.stages.reward.stages
    assert reward.train_checklist.max_steps == 36 and reward.evaluate.num_resamples < 1000
    assert cfg.task.stages.train_dpo.max_steps < 10 and cfg.dataset.num_prompts < 100
    # The command line still wins.
    cfg = compose_config(tmp_path, "debug=smoke", "dataset.num_prompts=33")
    assert cfg.dataset.num_prompts == 33


def check_table(sweep: Path, name: str) -> None:
    """The sweep's table has every job's rows, its swept values, and numbers in range."""
    config = OmegaConf.load(sweep / "multirun.yaml")
    jobs = sorted(p for p in sweep.iterdir() if (p / RESULTS_FILE).is_file())
    assert len(jobs) == num_jobs(config), f"{name}: a job wrote no {RESULTS_FILE}"
    expected = sum(len(json.loads((j / RESULTS_FILE).read_text())["rows"]) for j in jobs)
    md = (sweep / f"{name}.md").read_text()
    with open(sweep / f"{name}.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == expected >= len(jobs) and md.count("\n|") >= expected
    swept = dict(config.hydra.sweeper.params)
    for override in config.hydra.overrides.task:  # a sweep on the command line wins over params
        key, _, values = override.partition("=")
        if key in swept:
            swept[key] = values
    for key, values in swept.items():
        column = key.split(".")[-1]
        if column in rows[0]:
            assert len({r[column] for r in rows}) == len(str(values).split(",")), column
    unit = ("tau_star", "diff", "oracle_win_rate", "oracle_agreement", "_low", "_high", "_fraction")
    for row in rows:
        for column, cell in row.items():
            try:
                value = float(cell)
            except ValueError:
                continue
            assert math.isfinite(value), (name, column, cell)
            if column.startswith(PAIRED):  # a paired difference of two accuracies
                assert -1 <= value <= 1, (name, column, cell)
            elif column.endswith(unit) or column in unit:
                assert 0 <= value <= 1, (name, column, cell)
        for metric in ("tau_star", "diff", "oracle_win_rate", f"{PAIRED}tau_star", f"{PAIRED}diff"):
            low, high = (
                row.get(metric.replace("_rate", "") + "_low"),
                row.get(metric.replace("_rate", "") + "_high"),
            )
            if row.get(metric) not in (None, "") and low not in (None, ""):
                assert float(low) <= float(row[metric]) <= float(high), (name, metric)
    if any(c.get("head_to_head") for c in config.hydra.callbacks.values()):
        with open(sweep / f"{name}_head_to_head.csv") as f:
            matches = list(csv.DictReader(f))
        assert len(matches) == len(jobs) * (len(jobs) - 1) // 2, name  # every pair of jobs once
        for match in matches:
            assert 0 <= float(match["oracle_win_low"]) <= float(match["oracle_win_rate"]) <= 1
            assert float(match["oracle_win_rate"]) <= float(match["oracle_win_high"]) <= 1
            low, gain, high = (float(match[f"oracle_gain{s}"]) for s in ("_low", "", "_high"))
            assert low <= gain <= high, (name, match)


# Smoke runs whose path CI's slow suite covers otherwise (`heavy`: CI leaves them out to stay in its
# budget; `pytest -m heavy` runs them): mpo_k_sweep by the video test below, table4_equal_threshold
# is table4_mpo_vs_dpo at one threshold, table11 is run by test_reward_pipeline's sweep test,
# table14 / fig11 train DPO as table4 does, main_seeds is the main job (test_reward_pipeline) over
# seeds, fig5 / ablation_dimensions / table2_synthworld are reward-pipeline sweeps (the sweep test
# of test_reward_pipeline; the video pipeline runs in the video K-sweep test below), and table4 /
# table5 run the generator chain that test_generator_tasks' CLI test and the K-sweep test run.
HEAVY = {
    "table2_synthworld",
    "table4_mpo_vs_dpo",
    "table5_dominance",
    "mpo_k_sweep",
    "table4_equal_threshold",
    "table11_regression_size",
    "table14_granularity",
    "fig11_curves",
    "main_seeds",
    "fig5_num_questions",
    "ablation_dimensions",
}


@pytest.mark.slow
@pytest.mark.parametrize(
    "experiment",
    [pytest.param(n, marks=pytest.mark.heavy) if n in HEAVY else n for n in NAMES],
)
def test_every_experiment_runs_at_smoke_size(experiment, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # toy tensors: see tests.conftest.one_thread
    if experiment == "table2_real":  # reads real snapshots: fixtures in their published layouts
        write_table2_snapshots(tmp_path / "datasets")
    result = run_cli(
        f"paths.root_dir={tmp_path}",
        f"experiment={experiment}",
        "debug=smoke",
        "logger=none",
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = (tmp_path / "logs").glob("*/multiruns/*")
    check_table(sweep, experiment)
    assert (sweep / f"{experiment}.png").stat().st_size > 1000
    if experiment == "table2_real":  # the paper's layout: one row per reward
        with open(sweep / "table2_real_layout.csv") as f:
            (row,) = list(csv.DictReader(f))
        assert row["reward"] == "released weights, tiny backbone"
        assert 0 <= float(row["hpdv2_test hpdv2"]) <= 1
        assert 0 <= float(row["monetbench_video tau_star"]) <= 1


KS = (4, 6)  # the experiment's K = 4, 8, 16 cut to two small ones: CI's budget


@pytest.mark.slow  # six pair-statistics jobs, tiny_video sampled at K = 4 and 6
def test_the_k_sweep_runs_on_synthworld_video(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # see tests.conftest.one_thread
    video = ["dataset=synthworld_video", "generator=tiny_video"]
    result = run_cli(
        f"paths.root_dir={tmp_path}",
        "experiment=mpo_k_sweep",
        "debug=smoke",
        "logger=none",
        f"task.stages.sample.candidates={','.join(map(str, KS))}",  # wins over the experiment's
        *video,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = (tmp_path / "logs").glob("*/multiruns/*")
    check_table(sweep, "mpo_k_sweep_video")  # beside the image table when published
    assert (
        (sweep / "mpo_k_sweep_video.md")
        .read_text()
        .startswith("# MPO against DPO on synthworld_video")
    )
    with open(sweep / "mpo_k_sweep_video.csv") as f:
        rows = list(csv.DictReader(f))
    rules = ("total", "mpo", "mpo_epsilon")
    assert [(r["candidates"], r["dpo"]) for r in rows] == [(str(k), d) for k in KS for d in rules]
    prompts = compose_config(tmp_path, "experiment=mpo_k_sweep", "debug=smoke", *video)
    prompts = prompts.task.stages.sample.prompts.num_prompts
    counts = [
        "candidate_pairs",
        "qualifying_pairs",
        "pairs_dominating",
        "pairs_non_dominating",
        "total_rule_pairs",
        "total_rule_dominating",
        "total_rule_non_dominating",
    ]
    by_rule = {}
    for row in rows:
        k, n = int(row["candidates"]), {c: int(row[c]) for c in counts}
        by_rule[k, row["dpo"]] = n
        assert n["candidate_pairs"] == prompts * k * (k - 1) // 2
        assert 0 < n["qualifying_pairs"] <= n["candidate_pairs"]
        assert 0 < int(row["prompts_with_pairs"]) <= prompts
        # No pair budget: every qualifying pair is kept and counted.
        assert n["pairs_dominating"] + n["pairs_non_dominating"] == n["qualifying_pairs"]
        assert n["total_rule_dominating"] + n["total_rule_non_dominating"] == n["total_rule_pairs"]
        assert float(row["qualifying_fraction"]) == pytest.approx(
            n["qualifying_pairs"] / n["candidate_pairs"]
        )
        assert float(row["total_rule_dominating_fraction"]) == pytest.approx(
            n["total_rule_dominating"] / n["total_rule_pairs"]
        )
        assert float(row["epsilon"]) == (0.25 if row["dpo"] == "mpo_epsilon" else 0.0)
    assert {float(r["threshold"]) for r in rows} == {0.0}  # debug=smoke: one threshold for all
    for k in KS:
        total, mpo, tolerant = (by_rule[k, d] for d in rules)
        assert mpo["qualifying_pairs"] == total["total_rule_dominating"]
        assert mpo["pairs_non_dominating"] == 0
        assert mpo["qualifying_pairs"] <= tolerant["qualifying_pairs"] <= total["qualifying_pairs"]
    # Each K sampled once, into its own folder; the rules of one K shared it.
    samples = tmp_path / "artifacts" / "synthworld_video"
    folders = sorted(samples.glob("*/tiny_qwen2_vl/samples/tiny_video/k*"))
    assert sorted(f.name.split("-")[0] for f in folders) == sorted(f"k{k}" for k in KS)
    for folder in folders:
        manifest = json.loads((folder / "manifest.json").read_text())
        k = manifest["task.candidates"]
        assert folder.name.startswith(f"k{k}-") and len(list(folder.glob("media/*"))) == prompts * k


def test_a_job_that_fails_after_a_stage_wrote_its_rows_is_a_failed_job(tmp_path):
    # optimize_generator's reward stage writes the reward's rows to results.json; when DPO then
    # fails (no pair qualifies), those rows are not the job's: the job is a failed row.
    sweep = tmp_path / "sweep"
    write_results(sweep / "0", [{"generator": "mpo", "oracle_win_rate": 0.53}], ["dpo=mpo"])
    (sweep / "1" / ".hydra").mkdir(parents=True)
    (sweep / "1" / ".hydra" / "overrides.yaml").write_text("- dpo=mpo_question\n")
    write_results(
        sweep / "1", [{"method": "VisionReward", "tau_star": 0.855}], ["dpo=mpo_question"]
    )
    error = ValueError("pairs.parquet holds no pairs; lower dpo.threshold")
    write_failure(sweep / "1", "optimize_generator", error, ["dpo=mpo_question"])
    rows = collect_rows(sweep)
    assert [(r["dpo"], r["status"]) for r in rows] == [
        ("mpo", "ok"),
        ("mpo_question", "failed: ValueError: pairs.parquet holds no pairs; lower dpo.threshold"),
    ]
    assert all("method" not in r for r in rows)
    (missing,) = missing_jobs(sweep)
    assert missing.startswith("1: dpo=mpo_question (failed: ValueError")


def test_a_job_run_again_in_its_folder_forgets_the_earlier_failure(tmp_path):
    cfg = compose_config(tmp_path, "task=make_data", "debug=smoke")
    out = Path(cfg.paths.output_dir)
    write_failure(out, "make_data", RuntimeError("killed"), [])
    run_task(cfg)
    assert not (out / "failed.json").exists()
    (row,) = collect_rows(tmp_path)
    assert "status" not in row
    assert row["num_items"] == cfg.dataset.num_prompts * cfg.dataset.renders_per_prompt


def test_a_setting_every_job_shares_gives_way_to_a_same_named_result(tmp_path):
    # `generator=tiny_video` on a sweep's command line must not hide the rows' generator column.
    sweep = tmp_path / "sweep"
    for job, rule in enumerate(("total", "mpo")):
        rows = [
            {"generator": "original", "reward/Safety": 0.5},
            {"generator": rule, "reward/Safety": 0.1, "reward/Stability": 0.2, "dpo": "x"},
        ]
        write_results(sweep / str(job), rows, [f"dpo={rule}", "generator=tiny_video"])
    rows = collect_rows(sweep)
    assert [r["generator"] for r in rows] == ["original", "total", "original", "mpo"]
    assert [r["dpo"] for r in rows] == ["total", "total", "mpo", "mpo"]  # swept: it wins
    # A column pattern lists whatever the rows hold (image or video dimensions), in order.
    table = SweepTable("t", columns=["generator", "reward/*", "dpo", "nothing/*"])
    rows, paths = table.build(sweep)
    assert list(rows[1]) == ["generator", "reward/Safety", "reward/Stability", "dpo"]
    assert rows[0]["reward/Stability"] == "" and rows[1]["reward/Stability"] == 0.2
    assert "| generator | reward/Safety | reward/Stability | dpo |" in paths["md"].read_text()
    # A rebuild (python -m vrexp.reports) names the sweep's dataset in the title and its media in
    # the file name, as the sweep did.
    callback = {
        "_target_": "vrexp.reports.SweepTable",
        "name": "t${by_media:'',_video}",
        "title": "on ${dataset.name}",
    }
    config = {
        "dataset": {"name": "synthworld_video", "media": "video"},
        "hydra": {"callbacks": {"table": callback}},
    }
    (rebuilt,) = sweep_tables(OmegaConf.create(config))
    assert (rebuilt.name, rebuilt.title) == ("t_video", "on synthworld_video")
    config["dataset"] = {"name": "synthworld_image", "media": "image"}
    (rebuilt,) = sweep_tables(OmegaConf.create(config))
    assert (rebuilt.name, rebuilt.title) == ("t", "on synthworld_image")
    config["hydra"]["callbacks"]["table"]["name"] = "t${no_such_resolver:}"
    with pytest.raises(ValueError, match="no_such_resolver"):
        sweep_tables(OmegaConf.create(config))


def write_table2_snapshots(datasets: Path) -> None:
    """table2_real's three benchmarks under ``paths.datasets_dir``, each in its published layout."""
    from tests import benchmark_fixtures as fx

    fx.write_hpdv2(datasets / "HPDv2")
    fx.write_genai_bench_video(datasets / "GenAI-Bench", datasets / "GenAI-Bench")
    fx.write_monetbench(datasets / "VisionRewardDB-Video")


# ------------------------------------------------------------------------------ rebuilding
@pytest.mark.slow  # CLI runs
def test_a_partly_failed_sweep_is_rebuilt_from_its_folder(tmp_path):
    # A real (cheap) multirun gives the real layout: multirun.yaml and the jobs' .hydra folders.
    result = run_cli(
        "-m",
        "task=make_data",
        "dataset.num_prompts=4,5,6",
        f"paths.root_dir={tmp_path}",
        "logger=none",
        "+hydra.callbacks.table._target_=vrexp.reports.SweepTable",
        "+hydra.callbacks.table.name=tiny",
        "+hydra.callbacks.table.columns=[num_prompts,tau_star,tau_star_low,tau_star_high]",
        "+hydra.callbacks.table.plot={kind:line,x:num_prompts,metrics:[tau_star]}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = (tmp_path / "logs" / "make_data" / "multiruns").iterdir()
    (sweep / "1" / RESULTS_FILE).unlink()  # job 1 "failed": it has no results.json
    for job in (0, 2):
        overrides = list(OmegaConf.load(sweep / str(job) / ".hydra" / "overrides.yaml"))
        row = {"tau_star": 0.5 + job / 10, "tau_star_low": 0.4, "tau_star_high": 0.8}
        write_results(sweep / str(job), [row], overrides)

    publish = tmp_path / "results"
    rebuilt = subprocess.run(
        [sys.executable, "-m", "vrexp.reports", str(sweep), "--publish", str(publish)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    output = rebuilt.stdout + rebuilt.stderr
    assert "missing 1: " in output and "dataset.num_prompts=5" in output
    md = (sweep / "tiny.md").read_text()
    assert "| 4 | 0.5000 |" in md and "| 6 | 0.7000 |" in md and "| 5 |" not in md
    assert (sweep / "tiny.csv").read_text().count("\n") == 3 and (sweep / "tiny.png").exists()
    header, _, table = (publish / "tiny.md").read_text().partition("\n\n")
    assert platform.node() in header and "CPUs" in header
    assert "python run.py task=make_data dataset.num_prompts=4,5,6" in header
    assert table == md
    assert (publish / "tiny.csv").read_text() == (sweep / "tiny.csv").read_text()
    assert (publish / "tiny.png").exists()

    not_a_sweep = subprocess.run(
        [sys.executable, "-m", "vrexp.reports", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert not_a_sweep.returncode == 2 and "multirun.yaml" in not_a_sweep.stderr


# ------------------------------------------------------------------------------ --help
@pytest.mark.slow  # CLI runs
def test_help_lists_the_tasks_and_experiments_one_line_each():
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert len(lines) < 80 and "base_" not in result.stdout
    for name in [*TASKS, *NAMES]:
        (line,) = [x for x in lines if x.strip().startswith(name + " ")]
        assert len(line.split()) > 2, line  # the name and its description


def test_the_sweep_end_publishes_when_asked(tmp_path):
    sweep, publish = tmp_path / "sweep", tmp_path / "results"
    for job in (0, 1):
        write_results(sweep / str(job), [{"tau_star": 0.5 + job / 10}], [f"seed={job}"])
    config = OmegaConf.create(
        {
            "hydra": {
                "sweep": {"dir": str(sweep)},
                "overrides": {"task": ["experiment=x", "seed=0,1"]},
            },
            "logger": None,
        }
    )
    plot = {"kind": "line", "x": "seed", "metrics": ["tau_star"]}
    SweepTable("x", plot=plot, publish_dir=str(publish)).on_multirun_end(config)
    header, _, table = (publish / "x.md").read_text().partition("\n\n")
    assert "`python run.py experiment=x seed=0,1`" in header and platform.node() in header
    # the versions that fix the numbers: another torch trains another model from the same seed
    for package in ("torch", "transformers", "pytorch-lightning", "tokenizers"):
        assert f"{package} {metadata.version(package)}" in header
    assert f"Python {platform.python_version()}" in header
    assert f"torch CPU kernels {torch.backends.cpu.get_cpu_capability()}" in header
    assert table == (sweep / "x.md").read_text() and "| 1 | 0.6000 |" in table
    assert (publish / "x.csv").exists() and (publish / "x.png").exists()


def write_generator_job(
    sweep: Path, job: int, dpo: str, base: JudgedSamples, tuned: JudgedSamples, rows: dict
) -> None:
    """A finished optimize_generator job as the sweep sees it: its overrides, results and the
    evaluation's judged samples, in their real files."""
    out = sweep / str(job)
    (out / ".hydra").mkdir(parents=True)
    (out / ".hydra" / "overrides.yaml").write_text(f"- dpo={dpo}\n")
    write_results(out, [{"generator": "original"}, {"generator": dpo}], [f"dpo={dpo}"])
    write_eval_samples(out / EVAL_DIR, rows, {"base": base, "tuned": tuned})


def judged(utility, clarity, grain) -> JudgedSamples:
    utility = np.asarray(utility, dtype=np.float64)
    return JudgedSamples(
        total=utility * 2,
        dimensions={"Quality": utility},
        utility=utility,
        qualities={"clarity": np.asarray(clarity, float), "grain": np.asarray(grain, float)},
    )


@settings(max_examples=15, deadline=None)
@given(st.integers(2, 12), st.integers(1, 3), st.integers(0, 2**16))
def test_a_sweeps_tuned_generators_meet_head_to_head_sample_by_sample(prompts, per_prompt, seed):
    rng = np.random.default_rng(seed)
    n = prompts * per_prompt
    rows = {
        "prompt_index": [p for p in range(prompts) for _ in range(per_prompt)],
        "sample": [s for _ in range(prompts) for s in range(per_prompt)],
        "prompt": [f"prompt {p}" for p in range(prompts) for _ in range(per_prompt)],
        "seed": list(range(n)),
    }
    u, c, g = (rng.uniform(0, 1, n) for _ in range(3))
    base = judged(u, c, g)
    total = judged(u - 1, c, g)  # worse than the base on every sample
    mpo = judged(u + 1, c + 0.5, g - 0.5)  # better, clearer, grainier
    with tempfile.TemporaryDirectory() as tmp:
        sweep = Path(tmp)
        write_generator_job(sweep, 0, "total", base, total, rows)
        write_generator_job(sweep, 1, "mpo", base, mpo, rows)
        table = SweepTable("t4", title="Table 4", head_to_head=True)
        table.build(sweep, publish_dir=sweep / "published")
        with open(sweep / "t4_head_to_head.csv") as f:
            (match,) = list(csv.DictReader(f))
        assert (match["generator"], match["against"]) == ("mpo", "total")
        assert float(match["oracle_win_rate"]) == float(match["oracle_win_low"]) == 1.0
        assert float(match["oracle_gain"]) == pytest.approx(2.0)
        assert match["oracle_up"] == "clarity" and match["oracle_down"] == "grain"
        assert float(match["reward_win_rate"]) == 1.0
        header = (sweep / "published" / "t4_head_to_head.md").read_text().splitlines()[0]
        assert header.startswith("_Run ")  # published with its provenance, like the table


def test_a_head_to_head_refuses_jobs_that_are_not_paired(tmp_path, caplog):
    rows = {"prompt_index": [0, 1], "sample": [0, 0], "prompt": ["a", "b"], "seed": [5, 6]}
    base = judged([0.2, 0.4], [0.5, 0.5], [0.5, 0.5])
    write_generator_job(tmp_path / "a", 0, "total", base, judged([0.1, 0.3], [0, 0], [0, 0]), rows)
    other_base = judged([0.3, 0.4], [0.5, 0.5], [0.5, 0.5])
    write_generator_job(tmp_path / "a", 1, "mpo", other_base, base, rows)
    with pytest.raises(ValueError, match="jobs 0 and 1 do not share one base"):
        sweep_head_to_head(tmp_path / "a")
    # The sweep's own table stands; the head-to-head is refused by name.
    with caplog.at_level(logging.ERROR):
        _, paths = SweepTable("t4", head_to_head=True).build(tmp_path / "a")
    assert "t4_head_to_head.md" not in {p.name for p in paths.values()}
    assert "t4: no head-to-head table: jobs 0 and 1" in caplog.text

    noise = {**rows, "seed": [5, 7]}
    write_generator_job(tmp_path / "b", 0, "total", base, base, rows)
    write_generator_job(tmp_path / "b", 1, "mpo", base, base, noise)
    with pytest.raises(ValueError, match="job 1 and job 0 were not evaluated on the same"):
        sweep_head_to_head(tmp_path / "b")
    # One job alone, or a job without samples: nothing to compare.
    (tmp_path / "b" / "1" / EVAL_DIR / EVAL_SAMPLES_FILE).unlink()
    assert sweep_head_to_head(tmp_path / "b") == []


def test_a_damaged_samples_file_is_named(tmp_path):
    rows = {"prompt_index": [0], "sample": [0], "prompt": ["a"], "seed": [5]}
    path = write_eval_samples(tmp_path, rows, {"base": judged([0.2], [0.5], [0.5])})
    path.write_bytes(path.read_bytes()[:40])  # truncated
    with pytest.raises(ValueError, match=f"{path} is not a readable parquet file"):
        read_eval_samples(path)
    with pytest.raises(FileNotFoundError, match="no evaluation samples"):
        read_eval_samples(tmp_path / "missing.parquet")
    with pytest.raises(ValueError, match="'base' has 2 judged samples for 1 rows"):
        write_eval_samples(tmp_path, rows, {"base": judged([0.2, 0.3], [0.5, 0.5], [0.5, 0.5])})
