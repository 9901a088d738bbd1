"""Training stages under ``trainer=ddp_cpu`` (2 processes, gloo) against one process with the same
global batch, run through ``run.py`` as a user runs them (docs/distributed.md §3).

Lightning's DDP strategy starts the second rank as a subprocess running the same command. Each
case compares: the loss curve (``train/loss`` at every step, from the CSV logger), the saved
model's weights, the validation and test accuracies, and the run folder's files (the DDP run
writes exactly the files the single process writes: no second ``run.log``, CSV version or model
folder from rank 1). Tolerances are the ``TOLERANCE`` constants below.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

from tests.conftest import run_cli

# Float sums over a global batch in another order (two ranks' shares, then gloo's all-reduce):
# measured max |difference| 2e-7 (loss) and 1e-6 (weights) at these sizes; accuracies are exact.
LOSS_TOLERANCE = 1e-5
WEIGHT_TOLERANCE = 1e-4

SMALL = ("debug=smoke", "logger=csv", "trainer.log_every_n_steps=1", "dataset.num_prompts=24")


def run(tmp_path: Path, name: str, *overrides: str, timeout: int = 400) -> Path:
    out = tmp_path / name
    result = run_cli(
        *SMALL,
        f"paths.root_dir={tmp_path}",
        f"paths.data_dir={tmp_path}/data",
        f"hydra.run.dir={out}",
        *overrides,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return out


def losses(run_dir: Path, key: str = "train/loss") -> dict[int, float]:
    (path,) = run_dir.glob("csv/version_*/metrics.csv")
    with path.open() as f:
        return {int(r["step"]): float(r[key]) for r in csv.DictReader(f) if r.get(key)}


def files(run_dir: Path) -> set[str]:
    return {str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file()}


def assert_same_weights(one: Path, two: Path) -> float:
    a, b = load_file(one), load_file(two)
    assert a.keys() == b.keys()
    worst = max(float(np.abs(a[k].astype(np.float64) - b[k]).max(initial=0)) for k in a)
    assert worst <= WEIGHT_TOLERANCE, worst
    return worst


def assert_same_curve(one: dict[int, float], two: dict[int, float]) -> None:
    assert one.keys() == two.keys() and len(one) >= 4
    np.testing.assert_allclose(list(two.values()), list(one.values()), rtol=0, atol=LOSS_TOLERANCE)


def test_train_checklist_on_two_processes_equals_one(tmp_path):
    stage = ("task=train_checklist", "task.max_epochs=2")
    single = run(tmp_path, "single", *stage, "task.batch_size=8")
    ddp = run(tmp_path, "ddp", *stage, "trainer=ddp_cpu", "task.batch_size=4")
    assert_same_curve(losses(single), losses(ddp))
    assert losses(single, "val/acc") == losses(ddp, "val/acc")  # synced counts: exact
    model = "checklist_model/model.safetensors"
    assert_same_weights(single / model, ddp / model)
    accuracy = "checklist_model/checklist_accuracy.json"
    one, two = (json.loads((d / accuracy).read_text()) for d in (single, ddp))
    assert one["test"] == two["test"] and one["best_val_acc"] == two["best_val_acc"]
    assert one["steps"] == two["steps"]
    # Rank 1 wrote nothing: no train_ddp_process_1.log, no second CSV version or model folder.
    assert files(ddp) == files(single)
    assert "rank: 1" not in (ddp / "run.log").read_text()
