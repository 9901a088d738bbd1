"""The entry point as a user runs it: the embedded default and the video split."""

from __future__ import annotations

import json
from importlib import metadata

import pytest
import torch

from tests.conftest import run_cli
from vrexp.data.synthworld import read_items


def test_make_data_prints_the_summary(tmp_path):
    result = run_cli("task=make_data", f"paths.root_dir={tmp_path}", "dataset.num_prompts=20")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "tie fraction 0.200" in result.stdout
    assert "Plan levels per sub-dimension" in result.stdout
    assert read_items(tmp_path / "data" / "synthworld_image" / "seed0-n20x3").num_rows == 60
    # The run folder records what its numbers were computed with.
    (environment,) = (tmp_path / "logs").rglob("environment.json")
    record = json.loads(environment.read_text())
    assert record["torch_threads"] == 1  # cpu_threads, set before the task runs
    # the CPU too: the same packages on another instruction set can give other float results
    assert record["cpu"]["torch_capability"] == torch.backends.cpu.get_cpu_capability()
    assert record["cpu"]["model"]
    assert record["packages"]["torch"] == metadata.version("torch")
    assert record["packages"]["transformers"] == metadata.version("transformers")


@pytest.mark.slow  # a CLI run
def test_make_data_for_video(tmp_path):
    result = run_cli(
        "task=make_data",
        "dataset=synthworld_video",
        "dataset.num_prompts=4",
        f"paths.root_dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    items = read_items(tmp_path / "data" / "synthworld_video" / "seed0-n4x3")
    assert items.num_rows == 12 and items.column("media")[0].as_py() == "video"


@pytest.mark.slow  # a CLI run
def test_unknown_task_is_named(tmp_path):
    result = run_cli("task.name=train_everything", f"paths.root_dir={tmp_path}")
    assert result.returncode != 0
    assert "train_everything" in result.stderr
