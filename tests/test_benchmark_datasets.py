"""The benchmark loaders (vrexp.data.benchmarks) on tiny snapshots in each published layout:
pairs, labels, ties and scores-file keys; errors naming file and row; recorded skips; lazy bytes."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

from tests import benchmark_fixtures as fx
from vrexp.configs import BenchmarkDatasetConfig, ConfigValueError
from vrexp.configs.choices import BenchmarkName, Media
from vrexp.configs.dataset import BENCHMARK_LABELS, BENCHMARK_MEDIA, BENCHMARK_SPLITS
from vrexp.data.benchmarks import (
    LOADERS,
    BenchmarkError,
    BenchmarkList,
    BenchmarkPair,
    FileMedia,
    ParquetMedia,
    RowError,
    Skip,
    TarMedia,
    ZipMedia,
    load_benchmark,
    load_genai_bench,
    load_hpdv2_test,
    load_imagerewarddb_test,
    load_monetbench_video,
    load_pickapic,
    load_videogen_rewardbench,
)
from vrexp.data.benchmarks import base as benchmark_base
from vrexp.data.benchmarks.genai_bench import VOTES
from vrexp.metrics.protocols import PROTOCOLS, Protocol, score_protocol

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def assert_colour(pixels: np.ndarray, index: int) -> None:
    assert pixels.shape == (fx.SIZE[1], fx.SIZE[0], 3)
    assert np.abs(pixels.reshape(-1, 3).mean(0) - fx.colour(index)).max() < 4


# ----------------------------------------------------------------------------- each loader


def test_hpdv2_test_lists_keys_ranks_and_ties(tmp_path):
    fx.write_hpdv2(tmp_path)
    bench = load_hpdv2_test(tmp_path)
    items = list(bench)
    assert (bench.form, bench.media, bench.protocols, bench.split) == (
        "ranked",
        Media.image,
        ("hpdv2",),
        "test",
    )
    assert [i.group for i in items] == [0, 1]
    assert items[1].keys == ("00001_0.jpg", "00001_1.jpg", "00001_2.jpg", "00001_3.jpg")
    assert items[1].ranks == (2, 1, 2, 3)  # images 0 and 2 tied by humans
    assert items[1].media[3] == FileMedia(tmp_path / "test" / "00001_3.jpg")
    assert_colour(items[1].media[3].load(), 13)
    # The loader's output is the protocols' ranked form: a reward ordering by -rank scores 1.
    scores = {k: -r for item in items for k, r in zip(item.keys, item.ranks, strict=True)}
    score, rank, group = bench.protocol_inputs(scores)
    assert rank.tolist() == [1, 2, 3, 2, 1, 2, 3] and group.tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert score_protocol("hpdv2", score, rank, group).value == 1.0
    del scores["00001_2.jpg"], scores["00000_0.jpg"]
    with pytest.raises(
        BenchmarkError, match=r"hpdv2_test test: no score for media '00000_0.jpg' and 1 more"
    ):
        bench.protocol_inputs(scores)
    assert list(bench.keys()) == [k for i in items for k in i.keys]


def test_hpdv2_reads_images_inside_test_tar_gz_as_the_hub_ships_them(tmp_path):
    fx.write_hpdv2(tmp_path, tarball=True)
    assert not (tmp_path / "test").exists()
    bench = load_hpdv2_test(tmp_path)
    items = list(bench)
    assert [i.keys for i in items][1][3] == "00001_3.jpg"
    ref = items[1].media[3]
    assert ref == TarMedia(tmp_path / "test.tar.gz", "test/00001_3.jpg")
    assert_colour(ref.load(), 13)
    with ref.as_file() as path:
        assert path.suffix == ".jpg" and path.is_file()
    scores = {k: -r for item in items for k, r in zip(item.keys, item.ranks, strict=True)}
    assert score_protocol("hpdv2", *bench.protocol_inputs(scores)).value == 1.0
    # An image neither extracted nor in the archive is a row error naming the path looked at.
    fx.write_image(tmp_path / "test" / "00000_0.jpg", 99)  # an extracted image wins
    first = next(iter(load_hpdv2_test(tmp_path)))
    assert first.media[0] == FileMedia(tmp_path / "test/00000_0.jpg")
    entries = json.loads((tmp_path / "test.json").read_text())
    entries[1]["image_path"][0] = "gone.jpg"
    (tmp_path / "test.json").write_text(json.dumps(entries))
    with pytest.raises(RowError, match=r"test.json row 1: media file 'gone.jpg' not found"):
        list(load_hpdv2_test(tmp_path))


def test_imagerewarddb_test_reads_generations_relative_to_the_root(tmp_path):
    fx.write_imagereward(tmp_path)
    bench = load_imagerewarddb_test(tmp_path)
    items = list(bench)
    assert items[0].keys == tuple(f"images/test/000/{k}.webp" for k in range(4))
    assert items[0].ranks == (1, 2, 2, 3) and items[1].ranks == (2, 1, 3)
    assert items[0].media[1].path == tmp_path / "images/test/000/1.webp"
    assert_colour(items[1].media[2].load(), 12)
    # imagereward skips the 1 human-tied pair of list 0: 6 + 3 pairs, 1 skipped.
    scores = {k: -r for item in items for k, r in zip(item.keys, item.ranks, strict=True)}
    result = score_protocol("imagereward", *bench.protocol_inputs(scores))
    assert (result.value, result.pairs, result.skipped) == (1.0, 9, 1)


def test_imagerewarddb_media_root_overrides_the_root(tmp_path):
    fx.write_imagereward(tmp_path / "media")
    (tmp_path / "snap" / "data").mkdir(parents=True)
    shutil.copy(tmp_path / "media/data/test.json", tmp_path / "snap/data/test.json")
    items = list(load_imagerewarddb_test(tmp_path / "snap", media_root=tmp_path / "media"))
    assert items[0].media[0].path == tmp_path / "media/images/test/000/0.webp"


def test_imagerewarddb_hf_layout_reads_metadata_and_zips(tmp_path):
    fx.write_imagereward_hf(tmp_path)
    bench = load_imagerewarddb_test(tmp_path)
    items = list(bench)
    assert bench.files == (tmp_path / "metadata-test.parquet",)
    assert items[0].keys == tuple(f"images/test/test_1/000-{k}.webp" for k in range(4))
    assert items[1].keys[0] == "images/test/test_2/001-0.webp"
    assert items[0].ranks == (1, 2, 2, 3) and items[1].ranks == (2, 1, 3)
    assert [i.group for i in items] == [0, 1]
    ref = items[1].media[2]
    assert isinstance(ref, ZipMedia) and ref.archive == tmp_path / "images/test/test_2.zip"
    assert_colour(ref.load(), 12)
    # The same lists as the evaluation's test.json give the same protocol result.
    scores = {k: -r for item in items for k, r in zip(item.keys, item.ranks, strict=True)}
    result = score_protocol("imagereward", *bench.protocol_inputs(scores))
    assert (result.value, result.pairs, result.skipped) == (1.0, 9, 1)


def test_imagerewarddb_hf_layout_prefers_extracted_images_and_the_evaluation_file(tmp_path):
    fx.write_imagereward_hf(tmp_path)
    extracted = fx.write_image(tmp_path / "images/test/test_1/000-1.webp", 99, "WEBP")
    items = list(load_imagerewarddb_test(tmp_path))
    assert items[0].media[1] == FileMedia(extracted)
    assert isinstance(items[0].media[0], ZipMedia)
    fx.write_imagereward(tmp_path)  # data/test.json as well: the official evaluation's file wins
    assert load_imagerewarddb_test(tmp_path).files == (tmp_path / "data/test.json",)


def test_imagerewarddb_hf_layout_errors_name_the_row_and_file(tmp_path):
    fx.write_imagereward_hf(tmp_path)
    meta = tmp_path / "metadata-test.parquet"
    table = pq.read_table(meta)
    paths = table.column("image_path").to_pylist()
    paths[5] = "images/test/test_2/gone.webp"  # list 1's second image
    pq.write_table(table.set_column(0, "image_path", pa.array(paths)), meta)
    with pytest.raises(RowError, match=r"metadata-test.parquet row 4: row 5: image .*gone.webp"):
        list(load_imagerewarddb_test(tmp_path))
    bench = load_imagerewarddb_test(tmp_path, skip_invalid=True)
    assert [i.group for i in bench] == [0]
    assert bench.skipped == [Skip(str(meta), 4, bench.skipped[0].reason)]

    counts = table.column("image_amount_in_total").to_pylist()
    counts[0] = 5
    pq.write_table(table.set_column(4, "image_amount_in_total", pa.array(counts, pa.int8())), meta)
    with pytest.raises(RowError, match=r"row 0: prompt_id 'p000' has 4 images but .*=5"):
        list(load_imagerewarddb_test(tmp_path))
    pq.write_table(table.drop(["rank"]), meta)
    with pytest.raises(BenchmarkError, match=r"metadata-test.parquet: missing column 'rank'"):
        load_imagerewarddb_test(tmp_path)
    meta.unlink()
    with pytest.raises(BenchmarkError, match=r"expected .*data/test.json .* or .*metadata-test"):
        load_imagerewarddb_test(tmp_path)


def test_imagerewarddb_validation_split_reads_the_hf_layout(tmp_path):
    fx.write_imagereward_hf(tmp_path, split="validation", archives=1)
    bench = load_imagerewarddb_test(tmp_path, split="validation")
    assert [len(i.keys) for i in bench] == [4, 3]
    assert next(iter(bench)).media[0].archive == tmp_path / "images/validation/validation_1.zip"


def test_pickapic_pairs_labels_ties_uids_across_shards(tmp_path):
    fx.write_pickapic(tmp_path, "test_unique")
    fx.write_pickapic(tmp_path, "test", labels=[1.0])  # test-*: must not mix with test_unique
    bench = load_pickapic(BenchmarkName.pickapic_v2, tmp_path, split="test_unique")
    items = list(bench)
    assert len(bench.files) == 2 and all("test_unique-" in f.name for f in bench.files)
    assert [i.label for i in items] == [1, -1, 0, 1, -1]
    assert [i.row for i in items] == [0, 1, 2, 3, 4]
    assert (items[3].key_a, items[3].key_b) == ("test_uniqueu3_0", "test_uniqueu3_1")
    assert items[3].prompt == "caption 3" and bench.protocols == ("pickapic",)
    # row 3 is the second shard's row 1 (shards of 2 and 3 rows)
    assert items[3].media_a == ParquetMedia(bench.files[1], 1, "jpg_0")
    assert_colour(items[3].media_b.load(), 7)
    other = list(load_pickapic(BenchmarkName.pickapic_v2, tmp_path, split="test"))
    assert [(i.key_a, i.label) for i in other] == [("testu0_0", 1)]


def test_iterating_decodes_no_image_and_decoding_reads_one_row_group(tmp_path):
    fx.write_pickapic(tmp_path, "validation_unique", labels=[1.0] * 6, shards=1)
    benchmark_base._row_group_column.cache_clear()
    items = list(load_pickapic(BenchmarkName.pickapic_v1, tmp_path, split="validation_unique"))
    assert benchmark_base._row_group_column.cache_info().misses == 0  # no image bytes read
    assert_colour(items[5].media_a.load(), 10)
    assert_colour(items[4].media_b.load(), 9)  # rows 4 and 5 share a row group (2 rows each)
    info = benchmark_base._row_group_column.cache_info()
    assert (info.misses, info.currsize) == (2, 2)  # one group of each column held at a time
    for item in items:  # A and B alternating, in order: each group of each column read once
        item.media_a.read_bytes(), item.media_b.read_bytes()
    assert benchmark_base._row_group_column.cache_info().misses == 2 + 6
    table = pq.ParquetFile(items[0].source).read_row_group(2, columns=["jpg_0"])
    assert items[5].media_a.read_bytes() == table.column("jpg_0")[1].as_py()
    with items[5].media_a.as_file() as path:  # for readers that take a path
        assert path.read_bytes() == table.column("jpg_0")[1].as_py()
    assert not path.exists()


def test_genai_bench_image_votes_and_row_keys(tmp_path):
    files = fx.write_genai_bench_image(tmp_path, "test_v1")
    fx.write_genai_bench_image(tmp_path, "test", votes=["rightvote"], shards=1)
    bench = load_genai_bench(Media.image, tmp_path, split="test_v1")
    items = list(bench)
    assert [i.label for i in items] == [1, -1, 0, 0, 1]  # tievote and bothbad_vote: human ties
    assert [(i.key_a, i.key_b) for i in items][3] == ("test_v1/3/left", "test_v1/3/right")
    assert items[4].media_b == ParquetMedia(files[1], 2, "right_image")
    assert_colour(items[4].media_b.load(), 9)  # the HF image struct's bytes
    assert bench.protocols == ("tau_star", "diff")
    assert [i.key_a for i in load_genai_bench(Media.image, tmp_path, split="test")] == [
        "test/0/left"
    ]


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    votes=st.lists(st.sampled_from(sorted(VOTES)), min_size=1, max_size=7),
    shards=st.integers(1, 3),
)
def test_genai_bench_image_labels_and_keys_follow_the_votes_over_any_sharding(
    tmp_path_factory, votes, shards
):
    root = tmp_path_factory.mktemp("genai")
    fx.write_genai_bench_image(root, "test", votes=votes, shards=min(shards, len(votes)))
    items = list(load_genai_bench(Media.image, root, split="test"))
    assert [i.label for i in items] == [VOTES[v] for v in votes]
    assert [i.key_b for i in items] == [f"test/{r}/right" for r in range(len(votes))]
    assert [i.prompt for i in items] == [f"prompt {r}" for r in range(len(votes))]


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(labels=st.lists(st.sampled_from([0.0, 0.5, 1.0]), min_size=1, max_size=6))
def test_pickapic_labels_follow_label_0(tmp_path_factory, labels):
    root = tmp_path_factory.mktemp("pick")
    fx.write_pickapic(root, "validation", labels=labels, shards=1)
    items = list(load_pickapic(BenchmarkName.pickapic_v1, root, split="validation"))
    assert [i.label for i in items] == [{1.0: 1, 0.0: -1, 0.5: 0}[x] for x in labels]


def test_genai_bench_video_urls_are_keys_and_files_are_found_by_name(tmp_path):
    fx.write_genai_bench_video(tmp_path / "snap", tmp_path / "videos")
    bench = load_genai_bench(Media.video, tmp_path / "snap", media_root=tmp_path / "videos")
    items = list(bench)
    assert [i.label for i in items] == [1, -1, 0]
    assert items[1].key_a == fx.genai_video_url(1, "left")
    assert items[1].media_b == FileMedia(tmp_path / "videos" / "0001_right.mp4")
    assert items[1].media_b.load().shape == (3, 32, 32, 3)


def test_genai_bench_video_refuses_two_urls_with_one_file_name(tmp_path):
    files = fx.write_genai_bench_video(tmp_path, tmp_path)
    table = pq.read_table(files[0])
    clash = table.column("right_video").to_pylist()
    clash[2] = "https://other.example/x/0000_left.mp4"
    pq.write_table(table.set_column(4, "right_video", pa.array(clash)), files[0])
    with pytest.raises(
        BenchmarkError, match=r"row 2: video .* share the file name '0000_left.mp4'"
    ):
        list(load_genai_bench(Media.video, tmp_path))


@pytest.mark.parametrize(
    ("label", "expected"), [(None, [1, -1, 0]), ("VQ", [1, -1, 0]), ("MQ", [-1, 0, 1])]
)
def test_videogen_rewardbench_labels_keys_and_dimensions(tmp_path, label, expected):
    fx.write_videogen_rewardbench(tmp_path)
    bench = load_videogen_rewardbench(tmp_path, label=label)
    items = list(bench)
    assert [i.label for i in items] == (
        expected if label else [1, -1, 0]  # Overall: A, B, same
    )
    assert bench.label == (label or "Overall")
    assert items[0].labels == {"Overall": 1, "VQ": 1, "MQ": -1, "TA": 0}
    assert (items[2].key_a, items[2].key_b) == ("videos/kling/002.mp4", "videos/gen3/002.mp4")
    assert items[2].media_b.path == tmp_path / "videos/gen3/002.mp4"
    assert items[1].prompt == "prompt, 1"  # a quoted comma survives
    assert bench.protocols == ("tau_star_videoalign", "without_ties")
    scores = {k: float(i) for i, k in enumerate(bench.keys())}  # B always scores higher
    a, b, labels = bench.protocol_inputs(scores, label="TA")
    assert (b - a).tolist() == [1.0] * 3 and labels.tolist() == [0, 1, -1]
    assert score_protocol("without_ties", a, b, labels).value == 0.5


def test_monetbench_video_answers_paths_and_media_root_by_name(tmp_path):
    fx.write_monetbench(tmp_path / "a")
    items = list(load_monetbench_video(tmp_path / "a"))
    assert [i.label for i in items] == [1, -1, 0]
    assert (items[0].key_a, items[0].key_b) == ("videos/0_1.mp4", "videos/0_2.mp4")
    assert items[0].media_a.path == tmp_path / "a/videos/0_1.mp4"
    fx.write_monetbench(tmp_path / "b", media_root=tmp_path / "flat")
    items = list(load_monetbench_video(tmp_path / "b", media_root=tmp_path / "flat"))
    assert items[2].media_b.path == tmp_path / "flat/2_2.mp4" and items[2].key_b == "videos/2_2.mp4"


def test_monetbench_reads_the_earlier_monetbench_folder(tmp_path):
    fx.write_monetbench(tmp_path)
    (tmp_path / "test").rename(tmp_path / "monetbench")
    assert len(list(load_monetbench_video(tmp_path))) == 3


def test_every_benchmark_names_registered_protocols_of_its_form(tmp_path):
    fx.write_hpdv2(tmp_path / "hpdv2")
    fx.write_imagereward(tmp_path / "ir")
    fx.write_pickapic(tmp_path / "pick")
    fx.write_genai_bench_image(tmp_path / "gi")
    fx.write_genai_bench_video(tmp_path / "gv", tmp_path / "gv")
    fx.write_videogen_rewardbench(tmp_path / "vg")
    fx.write_monetbench(tmp_path / "mb")
    roots = {
        "hpdv2_test": "hpdv2",
        "imagerewarddb_test": "ir",
        "pickapic_v1": "pick",
        "pickapic_v2": "pick",
        "genai_bench_image": "gi",
        "genai_bench_video": "gv",
        "videogen_rewardbench": "vg",
        "monetbench_video": "mb",
    }
    assert set(LOADERS) == set(BenchmarkName)
    for name in BenchmarkName:
        config = BenchmarkDatasetConfig(
            name=name, media=BENCHMARK_MEDIA[name], hf_id="x/y", root=str(tmp_path / roots[name])
        )
        bench = load_benchmark(config)
        assert bench.name == name and bench.split == config.split
        assert bench.protocols and all(
            PROTOCOLS[Protocol(p)].data == bench.form for p in bench.protocols
        )
        item = next(iter(bench))
        assert isinstance(item, BenchmarkPair if bench.form == "pairs" else BenchmarkList)


# ----------------------------------------------------------------------------- validation


def _rewrite_parquet(path: Path, column: str, values) -> None:
    table = pq.read_table(path)
    index = table.schema.get_field_index(column)
    pq.write_table(
        table.set_column(index, column, pa.array(values, table.schema.field(index).type)), path
    )


def test_an_unknown_label_names_file_and_row_or_is_a_recorded_skip(tmp_path):
    files = fx.write_pickapic(tmp_path)
    _rewrite_parquet(files[1], "label_0", [0.5, 0.25, 0.0])
    with pytest.raises(RowError, match=rf"{files[1].name} row 1: unknown label: label_0=0.25"):
        list(load_pickapic(BenchmarkName.pickapic_v1, tmp_path))
    bench = load_pickapic(BenchmarkName.pickapic_v1, tmp_path, skip_invalid=True)
    assert [i.key_a for i in bench] == [
        "test_uniqueu0_0",
        "test_uniqueu1_0",
        "test_uniqueu2_0",
        "test_uniqueu4_0",
    ]
    assert bench.skipped == [
        Skip(
            str(files[1]),
            1,
            "unknown label: label_0=0.25, label_1=0.0 (expected 1 / 0, 0 / 1 or 0.5 / 0.5)",
        )
    ]
    list(bench)  # a second pass records its skips afresh
    assert len(bench.skipped) == 1


@pytest.mark.parametrize(
    ("write", "load", "column", "bad", "message", "bad_row"),
    [
        (
            lambda root: fx.write_genai_bench_image(root, shards=1),
            lambda root, **kw: load_genai_bench(Media.image, root, **kw),
            "vote_type",
            ["leftvote", "leftvote", "upvote", "leftvote", "leftvote"],
            r"row 2: unknown vote_type 'upvote'",
            2,
        ),
        (
            lambda root: [fx.write_monetbench(root) / "test/test-00000-of-00001.parquet"],
            load_monetbench_video,
            "standard_answer",
            ["video1", "both", "tie"],
            r"row 1: unknown standard_answer 'both'",
            1,
        ),
    ],
)
def test_unknown_votes_and_answers(tmp_path, write, load, column, bad, message, bad_row):
    files = write(tmp_path)
    _rewrite_parquet(files[0], column, bad)
    with pytest.raises(RowError, match=message):
        list(load(tmp_path))
    bench = load(tmp_path, skip_invalid=True)
    assert len(list(bench)) == len(bad) - 1
    assert [(s.source, s.row) for s in bench.skipped] == [(str(files[0]), bad_row)]


def test_a_null_embedded_image_is_a_row_error_found_while_iterating(tmp_path):
    files = fx.write_pickapic(tmp_path, shards=1)
    table = pq.read_table(files[0])
    images = table.column("jpg_1").to_pylist()
    images[3] = None
    pq.write_table(
        table.set_column(
            table.schema.get_field_index("jpg_1"), "jpg_1", pa.array(images, pa.binary())
        ),
        files[0],
        row_group_size=2,
    )
    with pytest.raises(
        RowError, match=rf"{files[0].name} row 3: column 'jpg_1' holds no image bytes"
    ):
        list(load_pickapic(BenchmarkName.pickapic_v1, tmp_path))
    bench = load_pickapic(BenchmarkName.pickapic_v1, tmp_path, skip_invalid=True)
    assert [i.row for i in bench] == [0, 1, 2, 4]
    assert [(s.row, s.reason) for s in bench.skipped] == [
        (3, "column 'jpg_1' holds no image bytes")
    ]
    files = fx.write_genai_bench_image(tmp_path / "g", shards=1)
    table = pq.read_table(files[0])
    images = table.column("left_image").to_pylist()
    images[1] = {"bytes": None, "path": "gone.jpg"}
    column = pa.array(images, table.schema.field("left_image").type)
    pq.write_table(table.set_column(2, "left_image", column), files[0], row_group_size=2)
    with pytest.raises(RowError, match=r"row 1: column 'left_image' holds no image bytes"):
        list(load_genai_bench(Media.image, tmp_path / "g"))


def test_videogen_unknown_label_and_missing_video(tmp_path):
    fx.write_videogen_rewardbench(tmp_path)
    csv_file = tmp_path / "videogen-rewardbench.csv"
    lines = csv_file.read_text().splitlines()
    lines[2] = lines[2].replace(",same,A,B", ",tie,A,B")  # row 1's MQ
    csv_file.write_text("\n".join(lines) + "\n")
    (tmp_path / "videos/gen3/002.mp4").unlink()
    with pytest.raises(
        RowError, match=r"videogen-rewardbench.csv row 1: unknown label value\(s\) \{'MQ': 'tie'\}"
    ):
        list(load_videogen_rewardbench(tmp_path))
    bench = load_videogen_rewardbench(tmp_path, skip_invalid=True)
    assert [i.row for i in bench] == [0]
    assert [(s.row, s.reason.split(":")[0]) for s in bench.skipped] == [
        (1, "unknown label value(s) {'MQ'"),
        (2, "path_B"),
    ]
    assert f"{tmp_path / 'videos/gen3/002.mp4'}" in bench.skipped[1].reason


def test_a_missing_image_names_the_entry_and_the_file(tmp_path):
    fx.write_hpdv2(tmp_path)
    (tmp_path / "test/00001_2.jpg").unlink()
    with pytest.raises(
        RowError, match=r"test.json row 1: media file '00001_2.jpg' not found: .*test/00001_2.jpg"
    ):
        list(load_hpdv2_test(tmp_path))
    bench = load_hpdv2_test(tmp_path, skip_invalid=True)
    assert [i.group for i in bench] == [0]  # the whole list is skipped, and recorded
    assert [s.row for s in bench.skipped] == [1]


def test_missing_monetbench_video_names_both_places_looked(tmp_path):
    fx.write_monetbench(tmp_path)
    (tmp_path / "videos/1_2.mp4").unlink()
    with pytest.raises(
        RowError,
        match=r"row 1: video2_path: media file 'videos/1_2.mp4' not found: "
        r".*videos/1_2.mp4 \(nor .*1_2.mp4\)",
    ):
        list(load_monetbench_video(tmp_path))


def test_a_missing_column_or_a_changed_type_is_a_schema_error_naming_the_file(tmp_path):
    files = fx.write_pickapic(tmp_path, shards=1)
    pq.write_table(pq.read_table(files[0]).drop_columns(["label_1"]), files[0])
    with pytest.raises(BenchmarkError, match=rf"{files[0].name}: missing column 'label_1'"):
        load_pickapic(BenchmarkName.pickapic_v2, tmp_path)
    files = fx.write_genai_bench_image(tmp_path / "g", shards=1)
    table = pq.read_table(files[0])
    paths = pa.array([f"{r}.jpg" for r in range(table.num_rows)])
    pq.write_table(table.set_column(2, "left_image", paths), files[0])
    with pytest.raises(
        BenchmarkError, match=r"column 'left_image' has type string.*unknown revision"
    ):
        load_genai_bench(Media.image, tmp_path / "g")


def test_an_unknown_json_layout_and_a_bad_entry(tmp_path):
    fx.write_hpdv2(tmp_path)
    records = json.loads((tmp_path / "test.json").read_text())
    records[1]["rank"] = [1, 2]  # 4 images
    (tmp_path / "test.json").write_text(json.dumps(records))
    with pytest.raises(RowError, match=r"row 1: 'rank' must be one integer rank per image \(4\)"):
        list(load_hpdv2_test(tmp_path))
    records[0] = {"prompt": "x", "images": [], "rank": []}  # an unknown revision's keys
    (tmp_path / "test.json").write_text(json.dumps(records))
    with pytest.raises(
        BenchmarkError,
        match=r"test.json entry 0: an entry needs keys \['prompt', 'image_path', 'rank'\]",
    ):
        list(load_hpdv2_test(tmp_path, skip_invalid=True))


def test_missing_files_and_csv_columns(tmp_path):
    with pytest.raises(BenchmarkError, match=r"expected .*test.json"):
        load_hpdv2_test(tmp_path)
    with pytest.raises(
        BenchmarkError, match=r"no parquet shards .*data/validation_unique-\*.parquet"
    ):
        fx.write_pickapic(tmp_path, "test_unique")
        load_pickapic(BenchmarkName.pickapic_v1, tmp_path, split="validation_unique")
    (tmp_path / "videogen-rewardbench.csv").write_text("path_A,path_B,prompt,Overall\n")
    with pytest.raises(BenchmarkError, match=r"missing column\(s\) \['VQ', 'MQ', 'TA'\]"):
        load_videogen_rewardbench(tmp_path)
    with pytest.raises(BenchmarkError, match=r"no parquet files in .*/test/"):
        load_monetbench_video(tmp_path)


def test_the_snapshot_revision_is_recorded_and_checked(tmp_path):
    fx.write_monetbench(tmp_path)
    assert load_monetbench_video(tmp_path).revision is None
    fx.write_snapshot_metadata(tmp_path, COMMIT, ["test/test-00000-of-00001.parquet"])
    assert load_monetbench_video(tmp_path).revision == COMMIT
    assert load_monetbench_video(tmp_path, revision=COMMIT.upper()).revision == COMMIT.upper()
    with pytest.raises(
        BenchmarkError, match=rf"the snapshot is revision {COMMIT}, but .* pinned to f{{40}}"
    ):
        load_monetbench_video(tmp_path, revision="f" * 40)


# ----------------------------------------------------------------------------- configs


@pytest.mark.parametrize("name", ["pickapic_v2", "videogen_rewardbench"])
def test_benchmark_options_compose_with_their_defaults(compose_cfg, tmp_path, name):
    # test_configs composes every option; this checks what the defaults resolve to.
    config = OmegaConf.to_object(compose_cfg(f"dataset={name}", f"dataset.root={tmp_path}").dataset)
    assert isinstance(config, BenchmarkDatasetConfig) and config.name == name
    assert config.hf_id and config.revision is None  # unpinned until a commit is verified
    assert config.split == ("test_unique" if "pickapic" in name else "test")
    assert config.label == ("Overall" if name == "videogen_rewardbench" else None)


def _benchmark_config(option_name: str, **values):
    """A dataset option's YAML merged onto its schema, as composition does (without Hydra's
    search path, which costs a second a composition here)."""
    option = OmegaConf.load(Path(__file__).parents[1] / "conf/dataset" / f"{option_name}.yaml")
    option.pop("defaults")
    return OmegaConf.merge(OmegaConf.structured(BenchmarkDatasetConfig), option, values)


def test_every_benchmark_option_defaults_its_split_and_label():
    for name in BenchmarkName:
        config = OmegaConf.to_object(_benchmark_config(name.value, root="/data"))
        assert config.split == BENCHMARK_SPLITS[name][0] and config.hf_id
        assert config.media == BENCHMARK_MEDIA[name]
        assert config.label == (BENCHMARK_LABELS[name][0] if name in BENCHMARK_LABELS else None)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["dataset=pickapic_v2", "dataset.split=dev"],
            r"dataset.split='dev' is not a split of pickapic_v2; valid: \['test_unique'",
        ),
        (
            ["dataset=videogen_rewardbench", "dataset.label=AQ"],
            r"dataset.label='AQ' is not a label of videogen_rewardbench; "
            r"valid: \['Overall', 'VQ', 'MQ', 'TA'\]",
        ),
        (["dataset=hpdv2_test", "dataset.label=VQ"], r"dataset.label='VQ' .* single label"),
        (
            ["dataset=pickapic_v1", "dataset.media_root=/x"],
            r"dataset.media_root='/x': pickapic_v1 embeds",
        ),
        (
            ["dataset=monetbench_video", "dataset.media=image"],
            r"dataset.media='image': monetbench_video holds video",
        ),
        (
            ["dataset=hpdv2_test", "dataset.revision=main"],
            r"dataset.revision='main' must be a 40-hex-digit commit",
        ),
    ],
)
def test_benchmark_config_values_are_checked_naming_the_key(overrides, message):
    name = overrides[0].removeprefix("dataset=")
    values = dict(o.removeprefix("dataset.").split("=") for o in overrides[1:])
    with pytest.raises(ConfigValueError, match=message):
        OmegaConf.to_object(_benchmark_config(name, root="/data", **values))


def test_an_unknown_benchmark_name_fails_naming_the_valid_ones():
    with pytest.raises(ValidationError, match=r"hpdv3.*hpdv2_test"):
        _benchmark_config("hpdv2_test", name="hpdv3")


def test_videogen_reads_videos_from_videos_zip_when_not_extracted(tmp_path):
    fx.write_videogen_rewardbench(tmp_path)
    with zipfile.ZipFile(tmp_path / "videos.zip", "w") as archive:
        for path in sorted((tmp_path / "videos").rglob("*.mp4")):
            archive.write(path, path.relative_to(tmp_path).as_posix())
    expected = (tmp_path / "videos/gen3/001.mp4").read_bytes()
    shutil.rmtree(tmp_path / "videos/gen3")
    items = list(load_videogen_rewardbench(tmp_path))
    assert items[0].media_a == FileMedia(tmp_path / "videos/kling/000.mp4")  # extracted first
    assert items[1].media_b == ZipMedia(tmp_path / "videos.zip", "videos/gen3/001.mp4")
    assert items[1].key_b == "videos/gen3/001.mp4" and items[1].media_b.read_bytes() == expected
    with items[1].media_b.as_file() as path:
        assert path.read_bytes() == expected
    assert not path.exists()  # the extracted copy is removed
    assert items[1].media_b.load().shape == (3, 32, 32, 3)
    with zipfile.ZipFile(tmp_path / "videos.zip", "w") as archive:
        archive.writestr("videos/kling/000.mp4", b"")
    benchmark_base._archive.cache_clear()
    with pytest.raises(
        RowError,
        match=r"row 0: path_B: media file 'videos/gen3/000.mp4' not found: .*, nor in .*videos.zip",
    ):
        list(load_videogen_rewardbench(tmp_path))


def test_a_stage_that_reads_synthworld_renders_refuses_a_benchmark_by_name():
    from vrexp.data.synthworld.split import SplitError, ensure_split

    config = OmegaConf.to_object(_benchmark_config("hpdv2_test", root="/data"))
    with pytest.raises(
        SplitError, match=r"dataset 'hpdv2_test' is a benchmark dataset, not a SynthWorld"
    ):
        ensure_split(config, None)  # refused before the checklist is used
