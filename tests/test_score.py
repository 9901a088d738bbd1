"""Scoring as a product: what VisionReward accepts, on which device, what it warns about, and
``task=score`` end to end (parquet, resume, HTML report, W&B table)."""

from __future__ import annotations

import io
import json
import shlex
import subprocess
import sys
import warnings
from importlib import metadata
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest
import rich
import torch
from hydra.errors import ConfigCompositionException
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf
from PIL import Image
from rich.console import Console

from tests.browser import parse_html, render_in_chromium
from tests.conftest import compose_config
from tests.tiny import TINY_BACKBONE
from vrexp.backbones import BackboneError, build_backbone
from vrexp.backbones.provenance import (
    TRAINED_ON_FILE,
    resolve_device,
    save_provenance,
    trained_on,
)
from vrexp.checklist import Checklist
from vrexp.configs import FrameSampling
from vrexp.configs.checks import ConfigValueError
from vrexp.media import Clip
from vrexp.reward import LinearReward
from vrexp.reward.inputs import MediaInputError, to_model_media
from vrexp.reward.scorer import (
    ChecklistMismatchWarning,
    DomainWarning,
    MediaKindError,
    VisionReward,
)
from vrexp.reward.scoring import SCORES_FILE, p_yes_column, read_scores
from vrexp.tasks import prepare, run_task
from vrexp.tracking.offline import finished_offline_runs

TINY = TINY_BACKBONE
SAMPLING = FrameSampling(num_frames=4)

pytestmark = pytest.mark.usefixtures("one_thread")


def _reward(cfg, checklist: Checklist) -> VisionReward:
    backbone = build_backbone(OmegaConf.to_object(cfg.backbone)).eval()
    weights = np.linspace(0.1, 1.0, sum(q.kind != "presence" for q in checklist.questions))
    return VisionReward(backbone, LinearReward(checklist, weights), batch_size=4)


@pytest.fixture(scope="module")
def rewards(tmp_path_factory):
    """An image and a video VisionReward folder (tiny VLMs) whose model folders record that they
    were trained on SynthWorld (64 x 64 renders)."""
    root = tmp_path_factory.mktemp("score")
    out = {}
    for media in ("image", "video"):
        cfg = compose_config(root, *TINY, f"dataset=synthworld_{media}")
        checklist = Checklist.from_config(cfg.dimensions)
        reward = _reward(cfg, checklist)
        reward.save_pretrained(root / media)
        save_provenance(
            root / media / "checklist_model", checklist, OmegaConf.to_object(cfg.dataset)
        )
        out[media] = root / media
    out["root"] = root
    return out


def _photo(path: Path, size=(80, 60), **save) -> Path:
    gradient = np.linspace(0, 255, size[0] * size[1] * 3).reshape(size[1], size[0], 3)
    Image.fromarray(gradient.astype(np.uint8)).save(path, **save)
    return path


def _mp4(path: Path, frames: int = 16, fps: int = 8, size: int = 64) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            pixels = np.full((size, size, 3), (i * 15) % 256, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


# ---------------------------------------------------------------- what score() accepts
def test_inputs_of_every_kind_become_uint8_rgb(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    assert np.array_equal(to_model_media(rgb, SAMPLING), rgb)
    # torch's layout: [C, H, W] floats in [0, 1]
    chw = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255
    assert np.array_equal(to_model_media(chw, SAMPLING), rgb)
    gray = rgb[..., 0]
    assert np.array_equal(to_model_media(gray, SAMPLING), np.repeat(gray[..., None], 3, -1))
    # RGBA over white: a fully transparent pixel is white, an opaque one keeps its colour.
    rgba = np.concatenate([rgb, np.zeros((12, 10, 1), np.uint8)], -1)
    rgba[0, 0, 3] = 255
    out = to_model_media(rgba, SAMPLING)
    assert np.array_equal(out[0, 0], rgb[0, 0]) and (out[1:, 1:] == 255).all()
    png = _photo(tmp_path / "p.png")
    assert np.array_equal(to_model_media(Image.open(png), SAMPLING), np.asarray(Image.open(png)))
    assert np.array_equal(to_model_media(str(png), SAMPLING), np.asarray(Image.open(png)))
    video = torch.rand(5, 3, 8, 8)  # [T, C, H, W]
    assert to_model_media(video, SAMPLING).shape == (5, 8, 8, 3)


def test_an_animated_pil_image_is_a_clip_timed_by_its_durations(tmp_path):
    frames = [Image.new("RGB", (8, 8), (40 * i, 0, 0)) for i in range(4)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:], duration=250)
    clip = to_model_media(Image.open(tmp_path / "a.gif"), SAMPLING)
    assert isinstance(clip, Clip) and clip.frames.shape == (4, 8, 8, 3)
    np.testing.assert_allclose(clip.timestamps, [0.0, 0.25, 0.5, 0.75])


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (np.full((4, 4, 3), np.nan, np.float32), "NaN"),
        (np.full((4, 4, 3), 2.0, np.float32), r"\[0, 1\]"),
        (np.zeros((4, 4, 5), np.uint8), "shape"),
        (np.zeros((4, 4, 3), np.int64), "uint8"),
        (42, "got int"),
    ],
)
def test_bad_inputs_are_named_by_position(value, match):
    with pytest.raises(MediaInputError, match=match) as err:
        to_model_media(value, SAMPLING, index=7)
    assert "media[7]" in str(err.value)


@settings(max_examples=40, deadline=None)
@given(
    height=st.integers(1, 9),
    width=st.integers(1, 9),
    channels=st.sampled_from([1, 3]),
    seed=st.integers(0, 2**16),
)
def test_float_tensors_and_uint8_arrays_agree(height, width, channels, seed):
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, channels), np.uint8)
    tensor = torch.from_numpy(pixels).permute(2, 0, 1).double() / 255
    expected = np.repeat(pixels, 3 // channels, -1)
    assert np.array_equal(to_model_media(tensor, SAMPLING), expected)
    assert np.array_equal(to_model_media(pixels, SAMPLING), expected)


# ---------------------------------------------------------------- the scorer as a user meets it
def test_a_jpeg_a_pil_image_and_an_rgba_array_score_like_their_pixels(rewards, tmp_path):
    reward = VisionReward.from_pretrained(rewards["image"], device="cpu")
    jpeg = _photo(tmp_path / "photo.jpg", size=(64, 64), quality=95)
    pixels = np.asarray(Image.open(jpeg))
    rgba = np.concatenate([pixels, np.full((64, 64, 1), 255, np.uint8)], -1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 64 x 64: SynthWorld's size, so no domain warning
        totals = [
            reward.score(x, "a red cube").total for x in (Image.open(jpeg), jpeg, pixels, rgba)
        ]
    for total in totals[1:]:
        torch.testing.assert_close(total, totals[0])


def test_device_and_dtype(rewards):
    reward = VisionReward.from_pretrained(rewards["image"], device="cpu", dtype="bfloat16")
    assert reward.bounds() == reward.reward.bounds() and reward.bounds()[0] < 0
    assert reward.device == torch.device("cpu")
    assert reward.backbone.model.dtype == torch.bfloat16
    image = np.zeros((64, 64, 3), np.uint8)
    assert torch.isfinite(reward.score(image, "x").total).all()
    assert resolve_device(None) == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(BackboneError, match="no CUDA device"):
            VisionReward.from_pretrained(rewards["image"], device="cuda")


def test_media_of_the_wrong_kind_is_an_error(rewards, tmp_path):
    image_reward = VisionReward.from_pretrained(rewards["image"], device="cpu")
    video_reward = VisionReward.from_pretrained(rewards["video"], device="cpu")
    with pytest.raises(MediaKindError, match=r"media\[0\] is an image.*scores videos"):
        video_reward.score(np.zeros((64, 64, 3), np.uint8), "x")
    with pytest.raises(MediaKindError, match=r"media\[1\] is a video.*scores images"):
        image_reward.score([np.zeros((64, 64, 3), np.uint8), _mp4(tmp_path / "v.mp4")], ["a", "b"])
    # A video file is read at the backbone's sampled frames, by its own timestamps.
    assert torch.isfinite(video_reward.score(tmp_path / "v.mp4", "x").total).all()


def test_a_checklist_the_model_never_learnt_and_foreign_media_warn(rewards):
    trained = VisionReward.from_pretrained(rewards["image"], device="cpu")
    with pytest.warns(
        ChecklistMismatchWarning, match=r"59 questions of checklist 'visionreward_image'"
    ):
        VisionReward(trained.backbone, LinearReward.from_official("image"))
    with pytest.warns(DomainWarning, match=r"media\[1\] is 80x60 pixels.*SynthWorld"):
        trained.score(
            [np.zeros((64, 64, 3), np.uint8), np.zeros((60, 80, 3), np.uint8)], ["a", "b"]
        )
    record = json.loads((rewards["image"] / "checklist_model" / TRAINED_ON_FILE).read_text())
    assert record["kind"] == "synthworld" and record["image_size"] == 64
    assert record["packages"]["torch"] == metadata.version("torch")
    assert trained.trained_on.packages == record["packages"]


def test_a_model_folder_from_before_package_versions_reads_them_as_unknown(rewards, tmp_path):
    folder = tmp_path / "checklist_model"
    folder.mkdir()
    record = json.loads((rewards["image"] / "checklist_model" / TRAINED_ON_FILE).read_text())
    del record["packages"]
    (folder / TRAINED_ON_FILE).write_text(json.dumps(record))
    info = trained_on(folder)
    assert info.packages is None and info.image_size == 64 and info.synthworld


def test_explain_fills_in_the_prompt_and_keeps_markup_as_text(rewards):
    reward = VisionReward.from_pretrained(rewards["image"], device="cpu")
    prompt = "a [red] cube"
    table = reward.explain(np.zeros((64, 64, 3), np.uint8), prompt)
    console = Console(record=True, width=400)
    console.print(table)
    shown = console.export_text()
    filled = [q.render(prompt) for q in reward.checklist.questions]
    assert any(prompt in text for text in filled)
    assert all(text in shown for text in filled) and "[[prompt]]" not in shown


def test_long_score_calls_show_progress(rewards):
    reward = VisionReward.from_pretrained(rewards["image"], device="cpu", batch_size=4)
    screen = io.StringIO()
    rich.reconfigure(file=screen, force_terminal=True, width=100)
    try:
        reward.score([np.zeros((64, 64, 3), np.uint8)] * 9, "x")
        assert "VisionReward" in screen.getvalue()
        screen.seek(0), screen.truncate()
        reward.score([np.zeros((64, 64, 3), np.uint8)] * 3, "x")  # one batch: no bar
        assert "VisionReward" not in screen.getvalue()
    finally:
        rich.reconfigure()


def test_an_out_of_memory_batch_is_halved_until_it_fits(rewards):
    reward = VisionReward.from_pretrained(rewards["image"], device="cpu", batch_size=8)
    images = [np.full((64, 64, 3), i, np.uint8) for i in range(8)]
    expected = reward.score(images, "x").total
    answer = reward.backbone.answer_batched

    def fits_two(media, texts, batch_size):  # a device that holds two items per forward
        if len(media) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return answer(media, texts, batch_size)

    reward.backbone.answer_batched = fits_two
    torch.testing.assert_close(reward.score(images, "x").total, expected)
    assert reward.batch_size == 2


# ---------------------------------------------------------------- task=score
def _score_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "mine"
    folder.mkdir()
    for i in range(3):
        _photo(folder / f"p{i}.png", size=(64, 64))
    _photo(folder / "photo.jpg", size=(64, 64))
    (folder / "notes.txt").write_text("not media")
    return folder


def test_task_score_writes_a_parquet_a_report_and_resumes(rewards, tmp_path):
    folder = _score_folder(tmp_path)
    out = tmp_path / "scores"
    prompt = 'a <script>alert("x")</script> & cube'
    cfg = compose_config(
        tmp_path,
        *TINY,
        "task=score",
        f"task.reward_dir={rewards['image']}",
        f"task.media={folder}",
        f"task.prompt='{prompt}'",
        f"task.out_dir={out}",
        "task.device=cpu",
        "task.chunk_size=2",
    )
    run_task(cfg)
    table, checklist = read_scores(out)
    assert table.num_rows == 4 and table.column("item_id").to_pylist() == [0, 1, 2, 3]
    assert [Path(p).name for p in table.column("media_path").to_pylist()] == [
        "p0.png",
        "p1.png",
        "p2.png",
        "photo.jpg",
    ]
    reward = VisionReward.from_pretrained(rewards["image"], device="cpu")
    paths = table.column("media_path").to_pylist()
    direct = reward.score(paths, prompt)
    np.testing.assert_allclose(table.column("total").to_numpy(), direct.total.numpy(), atol=1e-6)
    q = checklist.questions[0]
    np.testing.assert_allclose(
        table.column(p_yes_column(q.id)).to_numpy(), direct.p_yes[:, 0].numpy(), atol=1e-6
    )
    report = (out / "report.html").read_text()
    assert "<script>alert" not in report and "&lt;script&gt;alert" in report
    # In a real browser: one card per parquet row, with the parquet's numbers; the prompt's
    # <script> is text, not an element (the page's only script is its sorter).
    dom, shot = render_in_chromium(out / "report.html", screenshot_path=tmp_path / "report.png")
    root = parse_html(dom)
    cards = root.find_all("article", cls="item")
    assert sorted(int(c.attrs["data-item-id"]) for c in cards) == [0, 1, 2, 3]
    ids, totals = table.column("item_id").to_pylist(), table.column("total").to_pylist()
    totals = dict(zip(ids, totals, strict=True))
    for card in cards:
        item_id = int(card.attrs["data-item-id"])
        assert float(card.attrs["data-total"]) == totals[item_id]
        assert card.find(cls="prompt").text() == prompt
        row = card.find("tr", cls="question", data_question_id=str(q.id))
        assert float(row.attrs["data-p-yes"]) == table.column(p_yes_column(q.id))[item_id].as_py()
    assert len(root.find_all("script")) == 1
    assert Image.open(shot).size == (1280, 2000)
    # Resume: a lost part is rescored, the others are kept as they are.
    (out / "part-00000002.parquet").unlink()
    kept = (out / "part-00000000.parquet").stat().st_mtime_ns
    run_task(cfg)
    assert (out / "part-00000000.parquet").stat().st_mtime_ns == kept
    again, _ = read_scores(out)
    assert again.equals(table)
    assert pq.read_table(out / SCORES_FILE).num_rows == 4


def test_the_readmes_score_command_runs(rewards, tmp_path):
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("## Score your own image or video", 1)[1]
    command = section.split("```bash\n", 1)[1].split("\n#", 1)[0].replace("\\\n", " ")
    words = shlex.split(command.replace('"$(ls -d logs/pipeline/runs/*/reward | tail -1)"', "R"))
    assert words[:2] == ["python", "run.py"]
    photo = _photo(tmp_path / "my_photo.jpg")
    overrides = [
        w.replace("task.reward_dir=R", f"task.reward_dir={rewards['image']}").replace(
            "my_photo.jpg", str(photo)
        )
        for w in words[2:]
    ]
    out = tmp_path / "out"
    cfg = compose_config(tmp_path, *TINY, *overrides, f"task.out_dir={out}", "task.device=cpu")
    with pytest.warns(DomainWarning):  # an 80 x 60 photo for a SynthWorld reward
        run_task(cfg)
    table, _ = read_scores(out)
    assert table.num_rows == 1 and (out / "report.html").is_file()
    assert table.column("prompt")[0].as_py() == "two red circles on a sky background"


def test_task_score_logs_the_table_with_the_media_to_wandb(rewards, tmp_path):
    folder = _score_folder(tmp_path)
    cfg = compose_config(
        tmp_path,
        *TINY,
        "logger=wandb",  # offline by default
        "task=score",
        f"task.reward_dir={rewards['image']}",
        f"task.media={folder}",
        "task.prompt=a red cube",
        "task.device=cpu",
        "task.report=false",
    )
    run_task(cfg)
    (run,) = finished_offline_runs(tmp_path)
    # The offline record flattens the table's reference into score/items/<field> keys.
    (kind,), (rows,), (path,) = (run.logged(f"score/items/{k}") for k in ("_type", "nrows", "path"))
    assert kind == "table-file" and rows == 4
    table = json.loads((run.path.parent / "files" / path).read_text())
    assert table["columns"][:5] == ["item_id", "media", "media_path", "prompt", "total"]
    assert [row[0] for row in table["data"]] == [0, 1, 2, 3]
    # The run's copy names each picture's type; the pictures travel with the table's artifact
    # (staged for upload by `wandb sync`).
    assert [row[1] for row in table["data"]] == ["Image"] * 4
    assert run.logged("score/items/artifact_path")
    assert run.logged("score/num_items") == [4] and run.exit_code == 0


def test_task_score_with_the_released_weighting_and_a_backbone(tmp_path):
    _photo(tmp_path / "a.png", size=(64, 64))
    out = tmp_path / "out"
    cfg = compose_config(
        tmp_path,
        *TINY,
        "task=score",
        "task.official=image_select",
        f"task.media={tmp_path / 'a.png'}",
        "task.prompt=a cat",
        f"task.out_dir={out}",
        "task.device=cpu",
        "task.report=false",
    )
    run_task(cfg)
    table, checklist = read_scores(out)
    assert checklist.name == "visionreward_image_select" and table.num_rows == 1
    low, high = LinearReward.from_official("image_select").bounds()
    assert low <= table.column("total")[0].as_py() <= high
    assert len([c for c in table.column_names if c.startswith("p_yes/")]) == len(
        checklist.questions
    )


@pytest.mark.slow  # a CLI run
def test_the_vrexp_command_scores_from_any_directory(rewards, tmp_path):
    command = Path(sys.executable).with_name("vrexp")
    photo = _photo(tmp_path / "photo.jpg", size=(64, 64))
    result = subprocess.run(
        [
            str(command),
            "task=score",
            f"task.reward_dir={rewards['image']}",
            f"task.media={photo}",
            "task.prompt=a cube",
            "logger=none",
            "task.device=cpu",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (report,) = (tmp_path / "logs" / "score" / "runs").glob("*/scores/report.html")
    assert "photo.jpg" in report.read_text()


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ([], "exactly one reward"),
        (["task.reward_dir=R", "task.official=image"], "exactly one reward"),
        (["task.reward_dir=R", "task.media=a.png", "task.list_file=b.csv"], "not both"),
        (["task.reward_dir=R", "task.batch_size=0"], "task.batch_size=0"),
        (["task.reward_dir=R", "task.dtype=float8"], "dtype"),
    ],
)
def test_task_score_settings_are_checked_before_work(overrides, match, tmp_path):
    # A bad enum fails at composition (Hydra), a bad combination or range at validation.
    with pytest.raises((ConfigValueError, ConfigCompositionException), match=match):
        prepare(compose_config(tmp_path, "task=score", *overrides))
