"""``task=benchmark``: a scores file or a VisionReward on benchmark snapshots written in their
published layouts (tests/benchmark_fixtures.py), checked against the protocol functions on the
same data; the items export, the scores file's errors, per-dimension accuracy, Pick-a-Pic's
threshold split, and one CLI run."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import shlex
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf
from PIL import Image

from tests import benchmark_fixtures as fx
from tests.conftest import compose_config, run_cli
from tests.tiny import TINY_VLM
from vrexp.backbones import build_backbone
from vrexp.checklist import Checklist
from vrexp.configs.checks import ConfigValueError
from vrexp.configs.choices import ModelTies, Protocol
from vrexp.configs.tasks import BenchmarkTaskConfig
from vrexp.data.benchmarks import BenchmarkError, load_benchmark
from vrexp.data.benchmarks.scores import KeyScores, ScoresFileError, read_scores_file
from vrexp.metrics import protocols as protocols_module
from vrexp.metrics.protocols import (
    protocol_interval,
    score_protocol,
    select_pickapic_threshold,
)
from vrexp.reports.benchmark import benchmark_layout, evaluate_benchmark, write_benchmark
from vrexp.reward import LinearReward, VisionReward
from vrexp.reward.scoring import read_scores
from vrexp.tasks import prepare, run_task

pytestmark = pytest.mark.usefixtures("one_thread")

RESAMPLES = 60


def _write(name: str, root: Path) -> Path:
    """A fixture snapshot of benchmark ``name`` under ``root``; returns its root."""
    if name == "hpdv2_test":
        fx.write_hpdv2(root)
    elif name == "imagerewarddb_test":
        fx.write_imagereward(root)
    elif name == "pickapic_v2":
        fx.write_pickapic(root, "test_unique")
        fx.write_pickapic(root, "validation_unique", labels=[0.5, 1.0, 0.0, 0.5, 1.0, 0.0])
    elif name == "genai_bench_image":
        fx.write_genai_bench_image(root)
    elif name == "videogen_rewardbench":
        fx.write_videogen_rewardbench(root)
    elif name == "monetbench_video":
        fx.write_monetbench(root)
    return root


def _cfg(tmp_path: Path, name: str, root: Path, *overrides: str):
    return compose_config(
        tmp_path,
        "logger=none",
        "task=benchmark",
        f"dataset={name}",
        f"dataset.root={root}",
        f"task.num_resamples={RESAMPLES}",
        *overrides,
    )


def _dataset(cfg, split: str | None = None):
    dataset = OmegaConf.to_object(cfg.dataset)
    return dataset if split is None else dataclasses.replace(dataset, split=split)


def _keys(cfg, *splits: str) -> list[str]:
    """Every key the composed benchmark's split (and ``splits``) need, each once."""
    benches = [load_benchmark(_dataset(cfg))] + [load_benchmark(_dataset(cfg, s)) for s in splits]
    return list(dict.fromkeys(k for b in benches for k in b.keys()))  # noqa: SIM118 (a Benchmark)


def _scores_file(path: Path, keys: list[str], values: list[float], **dims: list[float]) -> Path:
    columns = {"media": keys, "score": values, **{f"dimension/{k}": v for k, v in dims.items()}}
    if path.suffix == ".parquet":
        pq.write_table(pa.table(columns), path)
    else:
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(list(columns))
            writer.writerows(zip(*columns.values(), strict=True))
    return path


def _quantised(n: int, seed: int) -> list[float]:
    """Scores on a coarse grid, so reward ties happen."""
    return (np.random.default_rng(seed).integers(0, 3, n) / 2).tolist()


def _inputs(bench, scores: dict, label=None):
    return bench.protocol_inputs(scores, label=label)


@pytest.mark.parametrize(
    "name",
    [
        "hpdv2_test",
        "imagerewarddb_test",
        "pickapic_v2",
        "genai_bench_image",
        "videogen_rewardbench",
    ],  # monetbench_video: in test_the_diff_convention_and_a_chosen_protocol_list
)
def test_a_scores_file_gives_each_protocols_numbers_and_intervals(name, tmp_path):
    root = _write(name, tmp_path / "snapshot")
    scores_path = tmp_path / "scores.csv"
    cfg = _cfg(tmp_path, name, root, f"task.scores={scores_path}")
    keys = _keys(cfg, *(["validation_unique"] if name == "pickapic_v2" else []))
    scores = dict(zip(keys, _quantised(len(keys), 3), strict=True))
    _scores_file(scores_path, keys, list(scores.values()))
    metric = run_task(cfg)

    record = json.loads((tmp_path / "out" / "benchmark.json").read_text())
    bench = load_benchmark(_dataset(cfg))
    data = _inputs(bench, scores)
    assert (record["benchmark"], record["split"], record["revision"]) == (name, bench.split, None)
    assert record["protocols"] == list(bench.protocols)
    assert metric == record["metrics"][bench.protocols[0]]
    expected = list(bench.protocols) + (
        [p for p in ("tau_star", "diff") if p not in bench.protocols]
        if bench.form == "pairs"
        else []
    )
    assert list(record["metrics"]) == expected
    options = {}
    if name == "pickapic_v2":
        validation = load_benchmark(_dataset(cfg, "validation_unique"))
        chosen = select_pickapic_threshold(*_inputs(validation, scores))
        assert record["pickapic"]["threshold_split"] == "validation_unique"
        assert record["pickapic"]["threshold"] == chosen.threshold
        options[Protocol.pickapic] = {"threshold": chosen.threshold}
    for protocol in expected:
        result = score_protocol(protocol, *data, **options.get(protocol, {}))
        value = record["metrics"][protocol]
        assert (value is None and math.isnan(result.value)) or value == pytest.approx(
            result.value, abs=1e-12
        )
        low, high = protocol_interval(
            protocol, *data, num_resamples=RESAMPLES, seed=0, **options.get(protocol, {})
        )
        got = record["intervals"][protocol]
        assert got == [pytest.approx(low, nan_ok=True), pytest.approx(high, nan_ok=True)]
        assert record["details"][protocol]["counts"] == result.counts
    first = score_protocol(expected[0], *data, **options.get(expected[0], {}))
    assert record["counts"]["pairs"] == first.pairs
    assert record["counts"]["human_ties"] == first.human_ties
    assert record["counts"]["skipped"] == 0
    if "diff" in expected:
        assert record["model_ties"] == "drop"
    # The tables hold the same numbers.
    with (tmp_path / "out" / "benchmark.csv").open(newline="") as handle:
        table = {r["protocol"]: r for r in csv.DictReader(handle)}
    for protocol in expected:
        if record["metrics"][protocol] is not None:
            assert float(table[protocol]["value"]) == pytest.approx(record["metrics"][protocol])
    assert f"# {name} ({bench.split}" in (tmp_path / "out" / "benchmark.md").read_text()


def test_the_items_export_round_trips_through_parquet(tmp_path):
    root = _write("pickapic_v2", tmp_path / "snapshot")
    items, scores = tmp_path / "items.parquet", tmp_path / "scores.parquet"
    # One run: export the keys only (no reward given), as a peer model would receive them.
    cfg = _cfg(tmp_path, "pickapic_v2", root, f"task.export_items={items}")
    assert run_task(cfg) is None  # nothing evaluated, so no metric
    table = pq.read_table(items)
    rows = table.to_pylist()
    # Both splits: the threshold split's keys are needed too.
    assert [r["media"] for r in rows[:2]] == ["test_uniqueu0_0", "test_uniqueu0_1"]
    assert {r["split"] for r in rows} == {"test_unique", "validation_unique"}
    assert rows[0]["media_path"] == "" and rows[0]["prompt"] == "caption 0"
    assert table.column_names == ["media", "split", "prompt", "media_path", "source", "row"]
    assert table.num_rows == len(_keys(cfg, "validation_unique"))
    values = [float(i % 4) for i in range(table.num_rows)]
    pq.write_table(table.append_column("score", pa.array(values)), scores)
    read = read_scores_file(scores)
    assert dict(read.total) == dict(zip(table.column("media").to_pylist(), values, strict=True))
    cfg.task.scores, cfg.task.export_items = str(scores), None
    run_task(cfg)
    assert json.loads((tmp_path / "out" / "benchmark.json").read_text())["counts"]["pairs"] == 5


def test_file_media_are_exported_with_their_paths(tmp_path):
    root = _write("monetbench_video", tmp_path / "snapshot")
    items = tmp_path / "items.csv"
    run_task(_cfg(tmp_path, "monetbench_video", root, f"task.export_items={items}"))
    with items.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["media"] for r in rows[:2]] == ["videos/0_1.mp4", "videos/0_2.mp4"]
    assert Path(rows[0]["media_path"]) == root / "videos/0_1.mp4"
    assert rows[0]["prompt"] == "monet prompt 0" and rows[0]["row"] == "0"


def test_videogen_rewardbench_reports_every_dimension_against_every_label(tmp_path):
    root = _write("videogen_rewardbench", tmp_path / "snapshot")
    path = tmp_path / "s.parquet"
    cfg = _cfg(tmp_path, "videogen_rewardbench", root, f"task.scores={path}", "dataset.label=VQ")
    keys = _keys(cfg)
    n = len(keys)
    columns = {"total": _quantised(n, 0), "quality": _quantised(n, 1), "motion": _quantised(n, 2)}
    _scores_file(path, keys, columns["total"], quality=columns["quality"], motion=columns["motion"])
    run_task(cfg)
    record = json.loads((tmp_path / "out" / "benchmark.json").read_text())
    assert record["label"] == "VQ"
    bench = load_benchmark(_dataset(cfg))
    labels = ("Overall", "VQ", "MQ", "TA")
    rows = {(r["score"], r["label"]): r for r in record["per_dimension"]}
    assert set(rows) == {(c, lab) for c in columns for lab in labels}
    for column, values in columns.items():
        scores = dict(zip(keys, values, strict=True))
        for lab in labels:
            data = _inputs(bench, scores, label=lab)
            for protocol in bench.protocols:
                assert rows[(column, lab)][protocol] == pytest.approx(
                    score_protocol(protocol, *data).value
                )
    # The headline is dataset.label's column (item.label is VQ here).
    total = dict(zip(keys, columns["total"], strict=True))
    headline = score_protocol("without_ties", *_inputs(bench, total, label="VQ"))
    assert record["metrics"]["without_ties"] == pytest.approx(headline.value)
    with (tmp_path / "out" / "benchmark_dimensions.csv").open(newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 12


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (
            "media,score\na.jpg,1\nb.jpg,2\na.jpg,3\n",
            "line 4: media 'a.jpg' is duplicated .first at line 2",
        ),
        ("media,score\na.jpg,nan\n", r"line 2 \(media 'a.jpg'\): column 'score' must be a finite"),
        ("media,score\na.jpg,high\n", "must be a finite number, got 'high'"),
        ("media,score\n,1\n", "line 2: empty 'media' key"),
        ("media,score,dimension/q\na.jpg,1,\n", "column 'dimension/q' must be a finite number"),
        ("path,value\na.jpg,1\n", r"missing column\(s\) \['media', 'score'\]"),
        ("media,score\n", "has no rows"),
    ],
)
def test_scores_file_errors_name_the_file_key_and_line(content, match, tmp_path):
    path = tmp_path / "s.csv"
    path.write_text(content)
    with pytest.raises(ScoresFileError, match=match):
        read_scores_file(path)


def test_a_parquet_scores_file_names_rows_and_nan(tmp_path):
    path = _scores_file(tmp_path / "s.parquet", ["a", "b"], [1.0, math.nan])
    with pytest.raises(ScoresFileError, match=r"s.parquet row 1 \(media 'b'\)"):
        read_scores_file(path)
    with pytest.raises(ScoresFileError, match="not found"):
        read_scores_file(tmp_path / "nope.parquet")


def test_a_key_without_a_score_is_named_and_nothing_is_written(tmp_path):
    root = _write("hpdv2_test", tmp_path / "snapshot")
    path = tmp_path / "scores.csv"
    cfg = _cfg(tmp_path, "hpdv2_test", root, f"task.scores={path}")
    keys = _keys(cfg)
    _scores_file(path, keys[1:], [1.0] * (len(keys) - 1))
    with pytest.raises(BenchmarkError, match=r"no score for media '00000_0\.jpg'$"):
        run_task(cfg)
    assert not (tmp_path / "out" / "benchmark.json").exists()
    cfg.task.protocols = ["tau_star"]  # a pair protocol on ranked lists
    with pytest.raises(BenchmarkError, match=r"task.protocols=\['tau_star'\] score pairs"):
        run_task(cfg)


def test_pickapic_on_another_benchmark_is_named(tmp_path):
    root = _write("monetbench_video", tmp_path / "snapshot")
    cfg = _cfg(tmp_path, "monetbench_video", root, "task.scores=a.csv", "task.protocols=[pickapic]")
    with pytest.raises(
        ValueError, match="validation_unique split, which monetbench_video does not"
    ):
        run_task(cfg)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({}, "task=benchmark needs one reward"),
        ({"scores": "a.csv", "reward_dir": "R"}, "needs one reward"),
        ({"scores": "a.txt"}, r"task.scores='a.txt' must be a .parquet or .csv"),
        ({"export_items": "a.json"}, r"task.export_items='a.json' must be"),
        ({"scores": "a.csv", "num_resamples": 0}, "num_resamples"),
    ],
)
def test_bad_settings_are_named(fields, match):
    with pytest.raises(ConfigValueError, match=match):
        BenchmarkTaskConfig(**fields)


def test_bad_names_fail_at_composition_and_validation(tmp_path):
    with pytest.raises(Exception, match="tau_star_typo"):
        _cfg(tmp_path, "hpdv2_test", tmp_path, "task.protocols=[tau_star_typo]")
    cfg = _cfg(tmp_path, "hpdv2_test", tmp_path, "task.scores=a.txt")
    with pytest.raises(ConfigValueError, match=r"task\.scores='a\.txt'"):
        prepare(cfg)


def test_the_diff_convention_and_a_chosen_protocol_list(tmp_path):
    root = _write("monetbench_video", tmp_path / "snapshot")
    path = tmp_path / "s.csv"
    cfg = _cfg(
        tmp_path,
        "monetbench_video",
        root,
        f"task.scores={path}",
        "task.protocols=[diff,without_ties]",
        "task.model_ties=half",
    )
    keys = _keys(cfg)
    _scores_file(path, keys, [1.0] * len(keys))  # every pair a reward tie
    run_task(cfg)
    record = json.loads((tmp_path / "out" / "benchmark.json").read_text())
    assert record["model_ties"] == "half" and list(record["metrics"]) == ["diff", "without_ties"]
    assert record["metrics"] == {"diff": 0.5, "without_ties": 0.0}
    assert record["counts"]["model_ties"] == 3
    # With diff's default (drop), nothing is left to count: NaN, written as null.
    layout = benchmark_layout(load_benchmark(_dataset(cfg)))
    dropped = evaluate_benchmark(layout, read_scores_file(path), num_resamples=5)
    assert dropped["metrics"]["diff"] is None and dropped["intervals"]["diff"] == [None, None]
    assert dropped["model_ties"] == "drop" and dropped["details"]["diff"]["value"] is None
    write_benchmark(dropped, tmp_path / "dropped")
    assert (
        json.loads((tmp_path / "dropped" / "benchmark.json").read_text())["metrics"]["diff"] is None
    )
    assert "| diff | True | nan |" in (tmp_path / "dropped" / "benchmark.md").read_text()


def test_rows_skipped_by_the_loader_are_counted_and_listed(tmp_path):
    root = tmp_path / "snapshot"
    fx.write_monetbench(root, answers=["video1", "maybe", "tie", "video2"])
    path = tmp_path / "s.csv"
    cfg = _cfg(
        tmp_path, "monetbench_video", root, f"task.scores={path}", "dataset.skip_invalid=true"
    )
    keys = _keys(cfg)
    assert "videos/1_1.mp4" not in keys  # the skipped row needs no score
    _scores_file(path, keys, [float(i) for i in range(len(keys))])
    run_task(cfg)
    record = json.loads((tmp_path / "out" / "benchmark.json").read_text())
    assert record["counts"]["pairs"] == 3 and record["counts"]["skipped"] == 1
    (skip,) = record["skipped_rows"]
    assert skip["row"] == 1 and "maybe" in skip["reason"] and skip["source"].endswith(".parquet")


@pytest.fixture(scope="module")
def pickapic_splits(tmp_path_factory):
    root = _write("pickapic_v2", tmp_path_factory.mktemp("pickapic"))
    cfg = compose_config(root, "dataset=pickapic_v2", f"dataset.root={root}")
    test, validation = (
        load_benchmark(_dataset(cfg)),
        load_benchmark(_dataset(cfg, "validation_unique")),
    )
    return test, validation, benchmark_layout(test), benchmark_layout(validation)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), ties=st.sampled_from(list(ModelTies)))
def test_evaluate_benchmark_is_the_protocol_functions_on_random_scores(pickapic_splits, seed, ties):
    test, validation, test_layout, validation_layout = pickapic_splits
    keys = list(test.keys()) + list(validation.keys())
    scores = dict(zip(keys, _quantised(len(keys), seed), strict=True))

    def run():
        return evaluate_benchmark(
            test_layout,
            KeyScores(scores),
            model_ties=ties,
            threshold_layout=validation_layout,
            num_resamples=20,
            seed=seed,
        )

    record = run()
    threshold = select_pickapic_threshold(*validation.protocol_inputs(scores)).threshold
    data = test.protocol_inputs(scores)
    assert record["pickapic"]["threshold"] == threshold
    assert (
        record["metrics"]["pickapic"]
        == score_protocol("pickapic", *data, threshold=threshold).value
    )
    diff = score_protocol("diff", *data, model_ties=ties).value
    assert (math.isnan(diff) and record["metrics"]["diff"] is None) or record["metrics"][
        "diff"
    ] == diff
    assert record["model_ties"] == ties.value
    low, high = protocol_interval("tau_star", *data, num_resamples=20, seed=seed)
    assert record["intervals"]["tau_star"] == [low, high]
    assert run()["intervals"] == record["intervals"]  # seeded: deterministic


def test_pickapic_without_its_validation_split_is_named(tmp_path):
    root = tmp_path / "snapshot"
    fx.write_pickapic(root, "test_unique")
    with pytest.raises(BenchmarkError, match="validation_unique"):
        run_task(_cfg(tmp_path, "pickapic_v2", root, "task.scores=a.csv"))


# ----------------------------------------------------------------------------- a VisionReward


@pytest.fixture(scope="module")
def image_reward(tmp_path_factory):
    """A tiny VisionReward folder for images (the one tests/test_score.py builds)."""
    root = tmp_path_factory.mktemp("reward")
    cfg = compose_config(root, "logger=none", *TINY_VLM, "dataset=synthworld_image")
    checklist = Checklist.from_config(cfg.dimensions)
    backbone = build_backbone(OmegaConf.to_object(cfg.backbone)).eval()
    weights = np.linspace(0.1, 1.0, sum(q.kind != "presence" for q in checklist.questions))
    VisionReward(backbone, LinearReward(checklist, weights), batch_size=4).save_pretrained(
        root / "image"
    )
    return root / "image"


def test_a_visionreward_folder_scores_pickapic_from_its_embedded_images(image_reward, tmp_path):
    root = _write("pickapic_v2", tmp_path / "snapshot")
    cfg = _cfg(
        tmp_path,
        "pickapic_v2",
        root,
        *TINY_VLM,
        f"task.reward_dir={image_reward}",
        "task.device=cpu",
        "task.chunk_size=4",
        "logger=csv",
    )
    run_task(cfg)
    record = json.loads((tmp_path / "out" / "benchmark.json").read_text())
    reward = VisionReward.from_pretrained(image_reward, device="cpu")
    test = load_benchmark(OmegaConf.to_object(cfg.dataset))
    items = list(test)
    # The reward's own scores of the decoded images, keyed the benchmark's way.
    images = [
        np.asarray(Image.open(io.BytesIO(fx.image_bytes(i))).convert("RGB")) for i in range(10)
    ]
    direct = reward.score(images, [items[i // 2].prompt for i in range(10)])
    keys = [k for item in items for k in (item.key_a, item.key_b)]
    scored = pq.read_table(tmp_path / "out" / "scores" / "test_unique" / "scores.parquet")
    table = dict(
        zip(
            scored.column("media_path").to_pylist(), scored.column("total").to_pylist(), strict=True
        )
    )
    np.testing.assert_allclose([table[k] for k in keys], direct.total.numpy(), atol=1e-5)
    data = test.protocol_inputs(table | _validation_scores(tmp_path))
    assert record["metrics"]["tau_star"] == pytest.approx(score_protocol("tau_star", *data).value)
    assert {r["score"] for r in record["per_dimension"]} == {
        "total",
        *reward.checklist.dimension_names,
    }
    assert record["reward"] == {"reward_dir": str(image_reward), "name": image_reward.name}
    # Logged to the stage logger.
    metrics_csv = next((tmp_path / "out").rglob("metrics.csv")).read_text()
    assert "benchmark/pickapic" in metrics_csv and "benchmark/tau_star_low" in metrics_csv
    # A re-run finds its parts and scores nothing again.
    part = next((tmp_path / "out" / "scores" / "test_unique").glob("part-*.parquet"))
    kept = part.stat().st_mtime_ns
    run_task(cfg)
    assert part.stat().st_mtime_ns == kept


def _validation_scores(tmp_path: Path) -> dict[str, float]:
    scored = pq.read_table(tmp_path / "out" / "scores" / "validation_unique" / "scores.parquet")
    return dict(
        zip(
            scored.column("media_path").to_pylist(), scored.column("total").to_pylist(), strict=True
        )
    )


@pytest.mark.slow  # a tiny video VLM on six videos (about 4 s here)
def test_a_video_visionreward_reads_files_and_zip_members_with_their_timing(tmp_path):
    root = _write("videogen_rewardbench", tmp_path / "snapshot")
    with zipfile.ZipFile(root / "videos.zip", "w") as archive:
        for path in sorted((root / "videos").rglob("*.mp4")):
            archive.write(path, path.relative_to(root).as_posix())
    originals = {
        p.relative_to(root).as_posix(): p.read_bytes() for p in (root / "videos/gen3").glob("*.mp4")
    }
    shutil.rmtree(root / "videos/gen3")  # side B only in the archive
    folder = tmp_path / "reward"
    cfg = _cfg(tmp_path, "videogen_rewardbench", root, *TINY_VLM, "dataset=videogen_rewardbench")
    checklist = Checklist.from_config(
        compose_config(tmp_path, *TINY_VLM, "dataset=synthworld_video").dimensions
    )
    backbone = build_backbone(OmegaConf.to_object(cfg.backbone)).eval()
    weights = np.linspace(0.1, 1.0, sum(q.kind != "presence" for q in checklist.questions))
    VisionReward(backbone, LinearReward(checklist, weights), batch_size=4).save_pretrained(folder)
    cfg.task.reward_dir, cfg.task.device = str(folder), "cpu"
    run_task(cfg)
    record = json.loads((tmp_path / "out" / "benchmark.json").read_text())
    reward = VisionReward.from_pretrained(folder, device="cpu")
    bench = load_benchmark(_dataset(cfg))
    for key, data in originals.items():
        (tmp_path / "copy" / key).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "copy" / key).write_bytes(data)
    items = list(bench)
    paths = [root / i.key_a for i in items] + [tmp_path / "copy" / i.key_b for i in items]
    prompts = [i.prompt for i in items] * 2
    direct = reward.score(paths, prompts).total.numpy()
    scores = dict(
        zip([i.key_a for i in items] + [i.key_b for i in items], direct.tolist(), strict=True)
    )
    # The clips differ, so no pair is a tie that float noise in batching could flip.
    assert min(abs(scores[i.key_a] - scores[i.key_b]) for i in items) > 1e-9
    table, _ = read_scores(tmp_path / "out" / "scores" / bench.split)
    stored = dict(
        zip(table.column("media_path").to_pylist(), table.column("total").to_pylist(), strict=True)
    )
    assert stored == pytest.approx(scores, rel=1e-9)
    data = bench.protocol_inputs(scores)
    assert record["metrics"]["without_ties"] == pytest.approx(
        score_protocol("without_ties", *data).value
    )
    assert {r["label"] for r in record["per_dimension"]} == {"Overall", "VQ", "MQ", "TA"}


@pytest.mark.slow  # a tiny VLM answers the released image checklist (about 5 s here)
def test_the_released_weighting_with_a_backbone(tmp_path):
    root = _write("imagerewarddb_test", tmp_path / "snapshot")
    cfg = _cfg(
        tmp_path,
        "imagerewarddb_test",
        root,
        *TINY_VLM,
        "task.official=image_select",
        "task.device=cpu",
    )
    run_task(cfg)
    record = json.loads((tmp_path / "out" / "benchmark.json").read_text())
    assert record["reward"] == {"official": "image_select", "name": "official:image_select"}
    assert record["counts"]["pairs"] == 6 + 3 and record["metrics"]["imagereward"] is not None
    checklist = Checklist.from_config(
        compose_config(tmp_path, "dimensions=visionreward_image_select").dimensions
    )
    assert {r["score"] for r in record["per_dimension"]} == {"total", *checklist.dimension_names}


def test_the_readmes_benchmark_command_runs(tmp_path):
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("## Benchmark a reward", 1)[1]
    command = section.split("```bash\n", 1)[1].split("\n#", 1)[0].replace("\\\n", " ")
    words = shlex.split(command)
    assert words[:2] == ["python", "run.py"] and "task=benchmark" in words
    root = _write("hpdv2_test", tmp_path / "HPDv2")
    path = tmp_path / "scores.csv"
    overrides = [
        w.replace("/data/HPDv2", str(root)).replace("task.scores=scores.csv", f"task.scores={path}")
        for w in words[2:]
    ]
    cfg = compose_config(tmp_path, "logger=none", "task.num_resamples=20", *overrides)
    keys = _keys(cfg)
    _scores_file(path, keys, [float(i) for i in range(len(keys))])
    run_task(cfg)
    assert (
        json.loads((tmp_path / "out" / "benchmark.json").read_text())["benchmark"] == "hpdv2_test"
    )


def test_the_protocol_enum_has_one_home():
    from vrexp.configs import choices

    assert protocols_module.Protocol is choices.Protocol
    assert protocols_module.ModelTies is choices.ModelTies


@pytest.mark.slow  # a CLI run
def test_the_cli_benchmarks_a_scores_file(tmp_path):
    root = _write("hpdv2_test", tmp_path / "snapshot")
    path = tmp_path / "scores.csv"
    cfg = _cfg(tmp_path, "hpdv2_test", root)
    keys = _keys(cfg)
    scores = dict(zip(keys, _quantised(len(keys), 5), strict=True))
    _scores_file(path, keys, list(scores.values()))
    out = tmp_path / "cli"
    result = run_cli(
        "task=benchmark",
        "dataset=hpdv2_test",
        f"dataset.root={root}",
        f"task.scores={path}",
        "logger=none",
        f"paths.root_dir={tmp_path}",
        f"paths.output_dir={out}",
        "task.num_resamples=50",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((out / "benchmark.json").read_text())
    expected = score_protocol("hpdv2", *load_benchmark(_dataset(cfg)).protocol_inputs(scores))
    assert record["metrics"]["hpdv2"] == pytest.approx(expected.value)
    assert (out / "benchmark.md").is_file() and (out / "benchmark.csv").is_file()


def test_a_scores_folder_serves_every_benchmark_and_each_job_writes_its_table_row(tmp_path):
    from vrexp.reports.sweep import RESULTS_FILE, layout_rows

    folder = tmp_path / "peer-model"
    folder.mkdir()
    rows = []
    for name in ("hpdv2_test", "monetbench_video"):
        root = _write(name, tmp_path / name)
        cfg = _cfg(tmp_path / name, name, root, f"task.scores={folder}")
        keys = _keys(cfg)
        suffix = ".csv" if name == "hpdv2_test" else ".parquet"
        _scores_file(folder / f"{name}{suffix}", keys, _quantised(len(keys), 7))
        run_task(cfg)
        record = json.loads((tmp_path / name / "out" / "benchmark.json").read_text())
        assert record["reward"]["name"] == "peer-model"
        assert record["reward"]["scores"] == str((folder / f"{name}{suffix}").resolve())
        (row,) = json.loads((tmp_path / name / "out" / RESULTS_FILE).read_text())["rows"]
        assert (row["reward"], row["benchmark"], row["split"]) == ("peer-model", name, "test")
        for protocol, value in record["metrics"].items():
            low, high = record["intervals"][protocol]
            assert (row[protocol], row[f"{protocol}_low"], row[f"{protocol}_high"]) == (
                value,
                low,
                high,
            )
        assert row["pairs"] == record["counts"]["pairs"]
        rows.append(row)
    wide = layout_rows(
        rows,
        index="reward",
        columns="benchmark",
        values={"hpdv2_test": ["hpdv2"], "monetbench_video": ["tau_star", "diff"]},
    )
    assert wide == [
        {
            "reward": "peer-model",
            "hpdv2_test hpdv2": rows[0]["hpdv2"],
            "monetbench_video tau_star": rows[1]["tau_star"],
            "monetbench_video diff": rows[1]["diff"],
        }
    ]
    # A folder without the benchmark's file, or with both kinds, is named.
    (folder / "hpdv2_test.parquet").write_bytes(b"")
    cfg = _cfg(tmp_path / "x", "hpdv2_test", tmp_path / "hpdv2_test", f"task.scores={folder}")
    with pytest.raises(
        ScoresFileError, match=r"hpdv2_test.parquet or hpdv2_test.csv; it holds both"
    ):
        run_task(cfg)
    cfg = _cfg(tmp_path / "y", "hpdv2_test", tmp_path / "hpdv2_test", f"task.scores={tmp_path}")
    with pytest.raises(ScoresFileError, match=r"it holds neither"):
        run_task(cfg)


def test_layout_rows_keep_a_failed_jobs_error():
    from vrexp.reports.sweep import layout_rows

    rows = [
        {"reward": "a", "benchmark": "x", "m": 0.5, "status": "ok"},
        {"reward": "a", "benchmark": "y", "status": "failed: BenchmarkError: no folder"},
        {"reward": "b", "benchmark": "x", "m": 0.7, "status": "ok"},
    ]
    wide = layout_rows(rows, index="reward", columns="benchmark", values={"x": ["m"], "y": ["m"]})
    assert wide == [
        {"reward": "a", "x m": 0.5, "y m": "", "status": "y: failed: BenchmarkError: no folder"},
        {"reward": "b", "x m": 0.7, "y m": "", "status": "ok"},
    ]
