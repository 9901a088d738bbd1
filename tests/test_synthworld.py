"""SynthWorld: oracle agreement, level coverage, tie rate, determinism, resume, grammar, media I/O."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from tests.conftest import compose_config
from vrexp.checklist import Checklist, ChecklistError
from vrexp.data.synthworld import (
    FACTORS,
    GrammarError,
    PromptSpec,
    SplitError,
    make_split,
    measure,
    parse_prompt,
    read_items,
    read_pairs,
    render,
    sample_plan,
    synthworld_judge,
    synthworld_verdict,
)
from vrexp.data.synthworld.grammar import BACKGROUNDS, OBJECT_COLORS, SHAPES
from vrexp.data.synthworld.preference import label_pairs
from vrexp.data.synthworld.split import oracle_agreement, prompt_spec
from vrexp.data.synthworld.world import quality
from vrexp.media import MediaError, load_media, save_media

# The sizes asserted below count 2 renders (one pair) per prompt; a test may override it after.
PIN = "dataset.renders_per_prompt=2"


def dataset_and_checklist(compose_cfg: Callable, *overrides: str):
    cfg = compose_cfg(PIN, *overrides)
    return OmegaConf.to_object(cfg.dataset), Checklist.from_config(cfg.dimensions)


def render_split(root: Path, *overrides: str) -> tuple[Path, Checklist]:
    cfg = compose_config(root, PIN, *overrides)
    dataset = OmegaConf.to_object(cfg.dataset)
    checklist = Checklist.from_config(cfg.dimensions)
    make_split(dataset, checklist)
    return Path(dataset.out_dir), checklist


@pytest.fixture(scope="module")
def image_split(tmp_path_factory) -> tuple[Path, Checklist]:
    return render_split(tmp_path_factory.mktemp("image"), "dataset.num_prompts=250")


@pytest.fixture(scope="module")
def video_split(tmp_path_factory) -> tuple[Path, Checklist]:
    return render_split(
        tmp_path_factory.mktemp("video"), "dataset=synthworld_video", "dataset.num_prompts=80"
    )


@pytest.mark.parametrize("split", ["image_split", "video_split"])
def test_oracle_recovers_the_plan_on_every_question(split, request):
    out_dir, checklist = request.getfixturevalue(split)
    items = read_items(out_dir)
    agreement = oracle_agreement(items, checklist)
    worst = int(agreement.argmin())
    assert agreement.min() >= 0.97, (checklist.questions[worst].text, agreement.min())
    assert agreement.mean() >= 0.99


@pytest.mark.parametrize("split", ["image_split", "video_split"])
def test_every_option_of_every_sub_dimension_occurs(split, request):
    out_dir, checklist = request.getfixturevalue(split)
    items = read_items(out_dir)
    for sub in checklist.sub_dimensions:
        levels = set(items.column(f"plan.{sub.key}").to_pylist())
        expected = set(range(sub.num_levels)) | ({-1} if sub.presence else set())
        assert levels == expected, sub.name


def test_split_files_have_the_documented_schema(image_split):
    out_dir, checklist = image_split
    items, pairs = read_items(out_dir), read_pairs(out_dir)
    assert items.num_rows == 500 and pairs.num_rows == 250
    assert {
        "item_id",
        "prompt",
        "media_path",
        "plan.clarity",
        "oracle.clarity",
        "oracle_answers",
        "utility",
    } <= set(items.column_names)
    assert all(
        len(a) == len(checklist.questions) for a in items.column("oracle_answers").to_pylist()
    )
    assert set(pairs.column("preference").to_pylist()) == {-1, 0, 1}
    labels = {1: "A", -1: "B", 0: "tie"}
    assert [labels[p] for p in pairs.column("preference").to_pylist()] == pairs.column(
        "label"
    ).to_pylist()
    assert Checklist.from_yaml(out_dir / "checklist.yaml") == checklist
    first = items.slice(0, 1).to_pylist()[0]
    pixels = load_media(out_dir / first["media_path"])
    assert pixels.shape == (64, 64, 3)
    assert measure(pixels, first["prompt"])["clarity"] == first["oracle.clarity"]
    # prompt_spec draws the prompts the render drew.
    dataset = OmegaConf.to_object(compose_config(out_dir, PIN, "dataset.num_prompts=250").dataset)
    rendered = items.column("prompt").to_pylist()[::2]
    assert rendered == [prompt_spec(dataset, "image", i).text for i in range(250)]


def test_video_media_round_trip_losslessly(video_split):
    out_dir, _ = video_split
    first = read_items(out_dir).slice(0, 1).to_pylist()[0]
    video = load_media(out_dir / first["media_path"])
    assert video.shape == (8, 64, 64, 3) and video.dtype == np.uint8
    assert measure(video, first["prompt"])["motion"] == first["oracle.motion"]


@pytest.mark.parametrize("tie_fraction", [0.0, 0.1, 0.35])
def test_tie_fraction_follows_the_config(tie_fraction, compose_cfg):
    dataset, checklist = dataset_and_checklist(
        compose_cfg,
        "dataset.num_prompts=40",
        "dataset.renders_per_prompt=3",
        f"dataset.tie_fraction={tie_fraction}",
    )
    summary = make_split(dataset, checklist)
    pairs = read_pairs(dataset.out_dir)
    assert pairs.num_rows == 40 * 3
    assert summary["tie_fraction"] == pytest.approx(round(tie_fraction * 120) / 120)
    ties = np.array(pairs.column("preference").to_pylist()) == 0
    delta = np.abs(pairs.column("delta").to_numpy())
    if ties.any():  # ties are exactly the smallest judged differences
        assert delta[ties].max() <= delta[~ties].min()


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 300), frac=st.floats(0.0, 0.95), seed=st.integers(0, 2**16))
def test_label_pairs_tie_rate_is_exact(n, frac, seed):
    rng = np.random.default_rng(seed)
    utilities = rng.normal(size=2 * n)
    pairs = np.arange(2 * n).reshape(n, 2)
    delta, pref = label_pairs(utilities, pairs, 0.1, frac, rng)
    assert (pref == 0).sum() == round(frac * n)
    assert np.all(np.sign(delta[pref != 0]) == pref[pref != 0])


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("dataset", ["synthworld_image", "synthworld_video"])
def test_same_seed_gives_byte_identical_output(dataset, tmp_path, compose_cfg):
    digests = []
    for copy in ("a", "b"):
        ds, checklist = dataset_and_checklist(
            compose_cfg,
            f"dataset={dataset}",
            "dataset.num_prompts=6",
            "dataset.chunk_size=4",
            f"dataset.out_dir={tmp_path}/{copy}",
        )
        make_split(ds, checklist)
        digests.append(tree_digest(tmp_path / copy))
    assert digests[0] == digests[1]
    # media + 2 parts + manifest, checklist, pairs, summary, the (empty) lock file
    assert len(digests[0]) == 6 * 2 + 7
    other, checklist = dataset_and_checklist(
        compose_cfg,
        f"dataset={dataset}",
        "dataset.num_prompts=6",
        "dataset.seed=1",
        f"dataset.out_dir={tmp_path}/c",
    )
    make_split(other, checklist)
    assert tree_digest(tmp_path / "c") != digests[0]


def test_killed_run_resumes_without_loss_or_duplicates(tmp_path, compose_cfg):
    ds, checklist = dataset_and_checklist(
        compose_cfg,
        "dataset.num_prompts=9",
        "dataset.chunk_size=3",
        f"dataset.out_dir={tmp_path}/s",
    )
    make_split(ds, checklist)
    complete = tree_digest(tmp_path / "s")
    # Simulate a kill during the last part: its parquet never got renamed into place.
    (tmp_path / "s" / "items" / "part-00000006.parquet").unlink()
    (tmp_path / "s" / "pairs.parquet").unlink()
    (tmp_path / "s" / "items" / ".part-00000006.parquet.tmp").write_bytes(b"partial")
    calls = []
    make_split(ds, checklist, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(6, 9), (9, 9)]  # the prompts found, then the one part rendered
    (tmp_path / "s" / "items" / ".part-00000006.parquet.tmp").unlink(missing_ok=True)
    assert tree_digest(tmp_path / "s") == complete
    ids = read_items(tmp_path / "s").column("item_id").to_pylist()
    assert ids == list(range(18))


def test_a_split_made_with_another_config_is_not_silently_mixed(tmp_path, compose_cfg):
    out = f"dataset.out_dir={tmp_path}/s"
    ds, checklist = dataset_and_checklist(compose_cfg, "dataset.num_prompts=3", out)
    make_split(ds, checklist)
    ds2, _ = dataset_and_checklist(
        compose_cfg, "dataset.num_prompts=3", "dataset.face_rate=0.9", out
    )
    with pytest.raises(SplitError, match=r"task\.overwrite=true"):
        make_split(ds2, checklist)
    make_split(ds2, checklist, overwrite=True)
    assert read_items(tmp_path / "s").num_rows == 6


def test_checklist_that_the_world_cannot_answer_is_rejected(compose_cfg):
    ds, _ = dataset_and_checklist(compose_cfg, "dataset.num_prompts=2")
    cfg = compose_cfg("dimensions=visionreward_image")
    with pytest.raises(
        ChecklistError, match="Alignment/Alignment: key None is not a SynthWorld image factor"
    ):
        make_split(ds, Checklist.from_config(cfg.dimensions))
    video = Checklist.from_config(compose_cfg("dimensions=synthworld_video").dimensions)
    with pytest.raises(ChecklistError, match="is for video"):
        make_split(ds, video)


def test_ablated_checklist_still_makes_a_split(compose_cfg):
    ds, checklist = dataset_and_checklist(
        compose_cfg, "dataset.num_prompts=4", "dimensions.drop=[Composition]"
    )
    assert "Composition" not in checklist.dimension_names
    summary = make_split(ds, checklist)
    assert "Composition/Symmetry" not in summary["level_histograms"]


specs = st.builds(
    PromptSpec,
    count=st.integers(1, 4),
    color=st.sampled_from(sorted(OBJECT_COLORS)),
    shape=st.sampled_from(SHAPES),
    background=st.sampled_from(sorted(BACKGROUNDS)),
    face=st.booleans(),
)


@given(spec=specs)
def test_prompt_grammar_round_trips(spec):
    assert parse_prompt(spec.text) == spec


@pytest.mark.parametrize(
    "prompt", ["two purple circles on a sky background", "a cat", "", "two red circles"]
)
def test_prompts_outside_the_grammar_are_named(prompt):
    with pytest.raises(GrammarError, match="prompt"):
        parse_prompt(prompt)


def test_media_errors_name_the_file(tmp_path):
    with pytest.raises(MediaError, match=r"missing\.png"):
        load_media(tmp_path / "missing.png")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(MediaError, match=r"corrupt\.png"):
        load_media(tmp_path / "corrupt.png")
    with pytest.raises(MediaError, match="uint8"):
        save_media(tmp_path / "x.png", np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="uint8 RGB"):
        measure(np.zeros((4, 4), dtype=np.uint8), "one red circle on a sky background")


def test_videos_with_identical_frames_keep_every_frame(tmp_path):
    # Pillow merges identical consecutive APNG frames; a static video must still read back whole.
    video = np.zeros((8, 16, 16, 3), dtype=np.uint8)
    video[5:] = 200
    save_media(tmp_path / "static.png", video)
    np.testing.assert_array_equal(load_media(tmp_path / "static.png"), video)
    still = np.repeat(video[:1], 6, axis=0)
    save_media(tmp_path / "still.png", still)
    np.testing.assert_array_equal(load_media(tmp_path / "still.png"), still)


@pytest.mark.parametrize("media", ["image", "video"])
def test_the_oracle_verdict_gives_the_utility_and_the_factors_behind_it(media, compose_cfg):
    dataset, _ = dataset_and_checklist(
        compose_cfg, *(["dataset=synthworld_video"] if media == "video" else [])
    )
    plans = [sample_plan(np.random.default_rng(s), media, 0.5, 0.5) for s in range(6)]
    items = [render(plan, seed=s) for s, plan in enumerate(plans)]
    prompts = [plan.prompt for plan in plans]
    verdict = synthworld_verdict(dataset)(items, prompts)
    keys = [f.key for f in FACTORS[media]]
    assert list(verdict.qualities) == keys
    for i, (item, prompt) in enumerate(zip(items, prompts, strict=True)):
        measured = quality(measure(item, prompt), media)
        assert {k: verdict.qualities[k][i] for k in keys} == measured
    # The utility is the judge's: the weighted qualities plus the alignment x clarity bonus.
    np.testing.assert_array_equal(verdict.utility, synthworld_judge(dataset)(items, prompts))
    weights = dict(dataset.utility.weights)
    expected = sum(weights[k] * verdict.qualities[k] for k in keys)
    expected += (
        dataset.utility.interaction * verdict.qualities["alignment"] * verdict.qualities["clarity"]
    )
    np.testing.assert_allclose(verdict.utility, expected)
    # A user's media (not a SynthWorld split) has no oracle.
    assert synthworld_verdict(SimpleNamespace(kind="folder")) is None
