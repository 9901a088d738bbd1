"""W&B offline by default; a multirun sweep logs one run per job into one group."""

from __future__ import annotations

import pytest

from tests.conftest import run_cli
from vrexp.tracking.offline import read_offline_runs


def test_multirun_logs_every_job_to_one_wandb_group(tmp_path):
    result = run_cli(
        "--multirun",
        "dataset.seed=3,4",
        "dataset.num_prompts=4",
        "task=make_data",
        "task.print_summary=false",
        f"paths.root_dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = read_offline_runs(tmp_path / "logs" / "make_data" / "multiruns")
    assert len(runs) == 2
    assert len({r.group for r in runs}) == 1 and runs[0].group.startswith("make_data-")
    assert sorted(r.name for r in runs) == [
        "make_data[dataset.num_prompts=4,dataset.seed=3,task.print_summary=False,task=make_data]",
        "make_data[dataset.num_prompts=4,dataset.seed=4,task.print_summary=False,task=make_data]",
    ]
    for run in runs:
        assert run.logged("data/num_items") == [12]  # 3 renders per prompt, 3 pairs among them
        assert run.logged("data/num_pairs") == [12]
        assert 0.9 <= run.logged("oracle/mean_agreement")[0] <= 1.0
        assert run.config["dataset"]["num_prompts"] == 4
        assert run.job_type == "make_data"
    assert {r.config["dataset"]["seed"] for r in runs} == {3, 4}
    assert not list(tmp_path.rglob("run-*.wandb.synced"))  # nothing went online


@pytest.mark.slow  # CLI runs
@pytest.mark.parametrize("logger", ["csv", "none"])
def test_other_loggers(logger, tmp_path):
    result = run_cli(
        "task=make_data", f"logger={logger}", "dataset.num_prompts=3", f"paths.root_dir={tmp_path}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert not list(tmp_path.rglob("offline-run-*"))
    metrics = list(tmp_path.rglob("metrics.csv"))
    assert len(metrics) == (1 if logger == "csv" else 0)
    if metrics:
        assert "data/tie_fraction" in metrics[0].read_text()
