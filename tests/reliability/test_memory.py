"""Bounded memory and honest decoding (docs/reliability.md §4).

A decompression bomb is a :class:`MediaError` naming the file wherever Pillow finds it (the header,
or a later GIF frame that grows the canvas), and ``skip_bad_media`` records it and goes on; an
animation turns only the frames the sampling picks into arrays, from a file or from a PIL image
handed to the scorer; an image read for a model is reduced to the model's size as it is read, with
the pixels (and so the answers) the full decode and the backbone's resize would give. Peak memory
is measured in child processes, with margins far from both sides.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf
from PIL import Image

import vrexp.media.images as images_module
from tests.conftest import ROOT, compose_config
from vrexp.backbones import build_backbone
from vrexp.checklist import Checklist
from vrexp.configs import (
    BackboneOptimSettings,
    ConfigValueError,
    FrameSampling,
    PartitionConfig,
    validate_config,
)
from vrexp.data.checklist_data import ChecklistDataModule
from vrexp.data.item_cache import ItemCache, nbytes
from vrexp.data.items import folder_items
from vrexp.data.synthworld import make_split
from vrexp.media import Clip, MediaError, load_for_model, load_media, probe_media, read_frames
from vrexp.media.images import draft_for, to_model_size
from vrexp.modules import ChecklistModule
from vrexp.modules.resume import config_manifest
from vrexp.reward.inputs import to_model_media
from vrexp.tasks.annotate import annotate_items

EIGHT = FrameSampling(num_frames=8)


# ------------------------------------------------------------------ files
def png_bomb(path: Path, width: int, height: int) -> Path:
    """A valid 1-bit greyscale PNG of zeros, written row by row: tens of kilobytes on disk,
    ``width * height * 3`` bytes as RGB."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    row = bytes(1 + (width + 7) // 8)  # filter byte, then the packed bits
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row * 100) for _ in range(height // 100))
    data += packer.compress(row * (height % 100)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )
    return path


def gif_growing_frame(path: Path, width: int, height: int) -> Path:
    """A 16 x 16 two-frame GIF whose second frame's descriptor claims ``width`` x ``height``:
    Pillow grows the canvas (and checks its size) only when it seeks to that frame."""
    frames = [Image.new("RGB", (16, 16), colour) for colour in ((0, 0, 0), (255, 255, 255))]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    data = bytearray(path.read_bytes())
    pos = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    descriptors = []
    while data[pos] != 0x3B:
        if data[pos] == 0x21:  # extension: label, then sub-blocks
            pos += 2
        else:  # image descriptor, optional local table, LZW code size, sub-blocks
            descriptors.append(pos)
            flags = data[pos + 9]
            pos += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0) + 1
        while data[pos]:
            pos += data[pos] + 1
        pos += 1
    assert len(descriptors) == 2
    data[descriptors[1] + 1 : descriptors[1] + 9] = struct.pack("<HHHH", 0, 0, width, height)
    path.write_bytes(bytes(data))
    return path


def long_gif(path: Path, count: int, width: int, height: int) -> Path:
    """``count`` frames 40 ms apart; frame i shows a bar at a position set by i, so every frame
    is stored (no two consecutive frames are equal)."""
    palette = [0, 0, 0, 255, 255, 255, 200, 60, 120] + [0] * (256 * 3 - 9)
    frames = []
    for i in range(count):
        index = np.zeros((height, width), dtype=np.uint8)
        index[: height // 2, (i * 3) % width] = 1
        index[height // 2 :, (i * 7) % width] = 2
        frame = Image.fromarray(index, mode="P")
        frame.putpalette(palette)
        frames.append(frame)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=40, loop=0)
    return path


def photo(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth random picture with some grain: what a camera gives, not flat colour."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (max(height // 32, 2), max(width // 32, 2), 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC))
    grain = rng.integers(-12, 13, (height, width, 3))
    return np.clip(smooth.astype(int) + grain, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------ bombs
BOMBS = {
    # 196 Mpx: over Pillow's own limit (2 x 89.5 Mpx), refused when Pillow reads the header.
    "png_14000": (lambda p: png_bomb(p / "bomb.png", 14000, 14000), "decompression bomb"),
    # A later GIF frame growing the canvas: Pillow checks it on seeking, past the header.
    "gif_frame_14000": (
        lambda p: gif_growing_frame(p / "grows.gif", 14000, 14000),
        "decompression bomb",
    ),
    # 81 Mpx: under Pillow's limit, over vrexp's MAX_PIXELS, checked per frame.
    "gif_frame_9000": (
        lambda p: gif_growing_frame(p / "grows9k.gif", 9000, 9000),
        "over the limit",
    ),
}


@pytest.mark.parametrize("case", sorted(BOMBS))
@pytest.mark.parametrize(
    "read",
    [
        lambda p: load_for_model(p, EIGHT, size=56),
        lambda p: load_for_model(p, EIGHT),
        load_media,
    ],
    ids=["load_for_model_sized", "load_for_model", "load_media"],
)
def test_a_decompression_bomb_is_a_media_error_naming_the_file(tmp_path, case, read):
    make, says = BOMBS[case]
    path = make(tmp_path)
    assert path.stat().st_size < 100_000
    with pytest.raises(MediaError, match=says) as err:
        read(path)
    assert str(err.value).startswith(f"{path}: ")


@pytest.mark.parametrize("case", ["png_14000", "gif_frame_14000"])
def test_probing_names_a_bomb_that_pillow_refuses(tmp_path, case):
    make, says = BOMBS[case]
    path = make(tmp_path)
    with pytest.raises(MediaError, match=says) as err:
        probe_media(path)
    assert str(err.value).startswith(f"{path}: ")


def test_a_gif_bomb_is_named_by_read_frames_too(tmp_path):
    path = gif_growing_frame(tmp_path / "grows.gif", 14000, 14000)
    with pytest.raises(MediaError, match=r"grows\.gif: a decompression bomb"):
        read_frames(path, EIGHT)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    cfg = compose_config(tmp_path_factory.mktemp("cfg"))
    return build_backbone(OmegaConf.to_object(cfg.backbone)), Checklist.from_config(cfg.dimensions)


def test_skip_bad_media_records_a_bomb_and_the_run_goes_on(tiny, tmp_path):
    backbone, checklist = tiny
    root = tmp_path / "folder"
    root.mkdir()
    Image.fromarray(photo(64, 64)).save(root / "good.png")
    png_bomb(root / "bomb.png", 14000, 14000)
    gif_growing_frame(root / "grows.gif", 14000, 14000)
    (root / "prompts.csv").write_text(
        "media,prompt\ngood.png,a red circle\nbomb.png,a cat\ngrows.gif,a dog\n"
    )
    items = folder_items(root, "prompts.csv")
    result = annotate_items(
        backbone, checklist, items, tmp_path / "ann", chunk_size=8, skip_bad_media=True
    )
    assert [s["item_id"] for s in result["skipped"]] == [1, 2]
    assert all("decompression bomb" in s["error"] for s in result["skipped"])
    assert "bomb.png" in result["skipped"][0]["error"]
    assert result["items"] == 1 and result["rows"] == len(checklist.vlm_questions)
    assert json.loads((tmp_path / "ann" / "skipped.json").read_text()) == result["skipped"]


# ------------------------------------------------------------------ animations
def test_an_animation_converts_only_the_picked_frames(tmp_path, monkeypatch):
    path = long_gif(tmp_path / "long.gif", 1500, 32, 16)
    converted = []
    real = images_module.rgb_image
    monkeypatch.setattr(
        images_module, "rgb_image", lambda image, **kw: converted.append(1) or real(image, **kw)
    )
    from_file = load_for_model(path, EIGHT)
    assert len(from_file) == 8 and len(converted) == 8
    converted.clear()
    with Image.open(path) as image:
        from_pil = to_model_media(image, EIGHT)
        assert image.tell() == 0  # left at its first frame, as it was handed over
    assert len(converted) == 8
    np.testing.assert_array_equal(from_pil.frames, from_file.frames)
    np.testing.assert_allclose(from_pil.timestamps, from_file.timestamps)
    np.testing.assert_allclose(from_file.timestamps, np.linspace(0, 1499 * 0.04, 8), atol=0.04)
    # The clip says it is sampled: the backbone does not sample again.
    assert from_file.sampled_with == from_pil.sampled_with == EIGHT


PEAK_SCRIPT = """
import json, sys
from pathlib import Path
from PIL import Image
from vrexp.configs import FrameSampling
from vrexp.media import load_for_model
from vrexp.reward.inputs import to_model_media

def status(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) * 1024

def measured(read):
    Path("/proc/self/clear_refs").write_text("5")  # the peak starts afresh, imports left out
    before = status("VmRSS:")
    clip = read()
    return {"frames": len(clip), "grew": status("VmHWM:") - before}

sampling = FrameSampling(num_frames=8)
with Image.open(sys.argv[1]) as image:
    out = {
        "file": measured(lambda: load_for_model(sys.argv[1], sampling)),
        "pil": measured(lambda: to_model_media(image, sampling)),
    }
print(json.dumps(out))
"""


@pytest.mark.slow  # an interpreter that imports torch; 1,500 frames decoded twice
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="Linux /proc needed")
def test_a_long_gif_costs_its_picked_frames_not_all_of_them(tmp_path):
    width, height = 256, 128
    path = long_gif(tmp_path / "long.gif", 1500, width, height)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(PEAK_SCRIPT), str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    every_frame = 1500 * width * height * 3  # 147 MB as RGB arrays
    for way, measured in json.loads(done.stdout.strip().splitlines()[-1]).items():
        assert measured["frames"] == 8
        # 8 frames are 0.8 MB (about 3 MB measured): the margin is for Pillow and the allocator.
        assert measured["grew"] < every_frame / 5, (way, measured)


# ------------------------------------------------------------------ reduction at read
def test_reading_at_the_model_size_gives_what_the_backbone_would_see(tiny, tmp_path):
    """PNG: the very pixels of full decode + the backbone's resize. JPEG: decoded at a DCT
    scale leaving at least twice the size, within a level on average, and the answers move by
    under 0.01."""
    backbone, checklist = tiny
    size = backbone.config.image_size
    pixels = [photo(512, 384, seed) for seed in range(4)]
    png, jpeg = [], []
    for i, p in enumerate(pixels):
        Image.fromarray(p).save(tmp_path / f"{i}.png")
        Image.fromarray(p).save(tmp_path / f"{i}.jpg", quality=92)
        png.append(tmp_path / f"{i}.png")
        jpeg.append(tmp_path / f"{i}.jpg")
    for path in png:
        full = backbone.frames(load_for_model(path, EIGHT))[0]
        read = backbone.read_media(path)
        assert read.shape == (size, size, 3)
        np.testing.assert_array_equal(read, full)
    full = [load_for_model(p, EIGHT) for p in jpeg]
    read = [backbone.read_media(p) for p in jpeg]
    for f, r in zip(full, read, strict=True):
        difference = np.abs(backbone.frames(f)[0].astype(int) - r.astype(int))
        assert difference.mean() < 1.0 and difference.max() <= 16
    questions = [q.render("a red circle") for q in checklist.vlm_questions]
    p_full = backbone.answer_batched(full, [questions] * len(full), 4)
    p_read = backbone.answer_batched(read, [questions] * len(read), 4)
    assert np.abs(p_full - p_read).max() < 0.01
    # ... and the JPEG was decoded at half size: 384 / 2 = 192 >= 2 x 56 > 384 / 4 = 96.
    with Image.open(jpeg[0]) as image:
        draft_for(image, size)
        assert image.size == (256, 192)


@settings(max_examples=25, deadline=None)
@given(
    width=st.integers(8, 300),
    height=st.integers(8, 300),
    size=st.integers(4, 80),
    quality=st.integers(60, 95),
)
def test_a_jpeg_read_at_a_size_stays_close_to_the_full_decode(width, height, size, quality):
    import io

    buffer = io.BytesIO()
    Image.fromarray(photo(width, height, seed=width * height)).save(
        buffer, format="JPEG", quality=quality
    )
    with Image.open(io.BytesIO(buffer.getvalue())) as image:
        full = to_model_size(np.asarray(image.convert("RGB")), size)
    with Image.open(io.BytesIO(buffer.getvalue())) as image:
        draft_for(image, size)
        w, h = image.size
        # the draft keeps at least DRAFT_GAP x size on each side and is an exact fraction
        assert (w, h) == (width, height) or (
            min(w, h) >= 2 * size and width % w == 0 and width // w == height // h
        )
        read = to_model_size(np.asarray(image.convert("RGB")), size)
    assert read.shape == full.shape == (size, size, 3)
    assert np.abs(read.astype(int) - full.astype(int)).mean() < 1.5


ANNOTATE_SCRIPT = """
import json, sys
from pathlib import Path
from omegaconf import OmegaConf
from tests.conftest import compose_config
from vrexp.backbones import build_backbone
from vrexp.checklist import Checklist
from vrexp.data.items import folder_items
from vrexp.tasks.annotate import annotate_items

def status(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) * 1024

root = Path(sys.argv[1])
cfg = compose_config(root / "cfg")
backbone = build_backbone(OmegaConf.to_object(cfg.backbone))
checklist = Checklist.from_config(cfg.dimensions)
items = folder_items(root / "images", "prompts.csv")
Path("/proc/self/clear_refs").write_text("5")
before = status("VmRSS:")
result = annotate_items(backbone, checklist, items, root / "ann", batch_size=8, chunk_size=512)
print(json.dumps({"items": result["items"], "grew": status("VmHWM:") - before}))
"""


@pytest.mark.slow  # an interpreter with torch; 24 JPEGs of 2048 x 2048
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="Linux /proc needed")
def test_annotate_holds_a_chunk_at_the_model_size(tmp_path):
    count = 24
    images = tmp_path / "images"
    images.mkdir()
    picture = Image.fromarray(photo(2048, 2048))
    for i in range(count):
        picture.save(images / f"{i}.jpg", quality=90)
    (images / "prompts.csv").write_text(
        "media,prompt\n" + "".join(f"{i}.jpg,a red circle\n" for i in range(count))
    )
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(ANNOTATE_SCRIPT), str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    assert measured["items"] == count
    full_resolution_chunk = count * 2048 * 2048 * 3  # 302 MB
    assert measured["grew"] < full_resolution_chunk / 3, measured


# ------------------------------------------------------------------ training caches
@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 64), min_size=1, max_size=40),
    bound=st.integers(0, 400),
    order=st.randoms(use_true_random=False),
)
def test_the_item_cache_keeps_the_first_items_that_fit_and_never_more(sizes, bound, order):
    cache = ItemCache(bound)
    keys = list(range(len(sizes)))
    made = []
    for epoch in range(3):
        if epoch:
            order.shuffle(keys)
        for key in keys:
            value = cache.get(key, lambda key=key: made.append(key) or np.zeros(sizes[key], "u1"))
            assert value.shape == (sizes[key],)
            assert cache.nbytes <= bound
    # Kept: the keys of the first epoch whose value still fitted when met; nothing else.
    kept, used = set(), 0
    for key, size in enumerate(sizes):
        if used + size <= bound:
            kept.add(key)
            used += size
    assert {k for k in range(len(sizes)) if k in cache} == kept
    assert cache.nbytes == used
    assert made.count(0) == 1 if 0 in kept else made.count(0) == 3
    assert cache.hits == 2 * len(kept) and cache.misses == 3 * len(sizes) - 2 * len(kept)


def test_the_item_cache_sizes_what_the_datasets_keep():
    clip = Clip(np.zeros((8, 4, 4, 3), np.uint8), np.arange(8.0))
    processed = {"pixel_values": torch.zeros(16, 1176), "input_ids": torch.zeros(1, 6, dtype=int)}
    assert nbytes(clip) == 8 * 4 * 4 * 3 + 8 * 8
    assert nbytes(processed) == 16 * 1176 * 4 + 6 * 8
    assert nbytes([clip, (np.zeros(3, np.float32),)]) == nbytes(clip) + 12
    with pytest.raises(TypeError, match="cannot size a str"):
        nbytes({"a": "text"})
    with pytest.raises(ValueError, match=">= 0 bytes"):
        ItemCache(-1)


@pytest.fixture(scope="module")
def smoke_split(tmp_path_factory):
    """60 SynthWorld items and the smoke-size backbone (image_size 28: 4 vision patches)."""
    root = tmp_path_factory.mktemp("split")
    cfg = compose_config(root, "debug=smoke", "dataset.num_prompts=20", "dataset.chunk_size=8")
    checklist = Checklist.from_config(cfg.dimensions)
    dataset = OmegaConf.to_object(cfg.dataset)
    make_split(dataset, checklist)
    return dataset.out_dir, checklist, OmegaConf.to_object(cfg.backbone)


def checklist_data(split, backbone, cache_mib, batch_size=8):
    split_dir, checklist, _ = split
    return ChecklistDataModule(
        split_dir,
        checklist,
        partition=PartitionConfig(),
        frames=backbone.config.frames,
        batch_size=batch_size,
        processor=backbone.process,
        cache_mib=cache_mib,
    )


def test_training_caches_stay_within_their_bound_however_many_items(smoke_split, one_thread):
    """The regression guard of docs/reliability.md §4: a cache that kept every item of the
    split (as it did) holds all 60 here; the bounded one stays under its bound for any count."""
    backbone = build_backbone(smoke_split[2])
    per_item = None
    for cache_mib in (None, 0.1):
        data = checklist_data(smoke_split, backbone, cache_mib)
        data.setup()
        items = sum(len(part) for part in data.parts.values())
        touched = set()
        for _ in range(2):
            loaders = {
                "train": data.train_dataloader(),
                "val": data.val_dataloader(),
                "test": data.test_dataloader(),
            }
            for part, loader in loaders.items():
                for batch in loader:
                    touched |= set(data.parts[part].item_ids[batch["rows"].numpy()].tolist())
                    reference = backbone.process(batch["media"])
                    for key, value in reference.items():  # what the cache gives is exact
                        assert torch.equal(batch["processed"][key], value), key
        cache = data.cache
        if cache_mib is None:
            assert items == 60 and len(touched) > 50
            assert len(cache) == 2 * len(touched)  # media and processed, of every item read
            per_item = cache.nbytes / len(touched)
        else:
            assert cache.nbytes <= 0.1 * 2**20 < 0.3 * items * per_item
            assert len(cache) < items  # far from all of them
            assert cache.hits > 0


def test_a_bounded_cache_trains_the_same_model_as_an_unbounded_one(
    smoke_split, tmp_path, one_thread
):
    """Two epochs, so the unbounded cache serves the second from memory, and the bounded one (a
    few items: 0.1 MiB) mostly reads again: the weights are equal bit for bit."""

    def train(cache_mib):
        pl.seed_everything(0, verbose=False)
        backbone = build_backbone(smoke_split[2])
        module = ChecklistModule(backbone, smoke_split[1], BackboneOptimSettings(warmup_steps=2))
        data = checklist_data(smoke_split, backbone, cache_mib, batch_size=16)
        trainer = pl.Trainer(
            accelerator="cpu",
            max_epochs=2,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            default_root_dir=tmp_path,
        )
        trainer.fit(module, datamodule=data)
        return {k: v.detach().clone() for k, v in backbone.state_dict().items()}, data.cache

    unbounded, everything = train(None)
    bounded, cache = train(0.1)
    assert 0 < len(cache) < len(everything) / 4
    assert unbounded.keys() == bounded.keys()
    for key, value in unbounded.items():
        assert torch.equal(value, bounded[key]), key


def test_a_run_resumes_with_another_cache_bound_but_not_with_another_setting(tmp_path):
    """``cache_mib`` changes memory, not the model: the resume manifest leaves it out."""

    def manifest(*overrides):
        cfg = compose_config(tmp_path, "task=train_checklist", *overrides)
        return config_manifest(cfg, ("task", "dataset", "backbone"))

    assert manifest() == manifest("task.cache_mib=0") == manifest("task.cache_mib=4096")
    assert manifest() != manifest("task.lr=0.5")
    with pytest.raises(ConfigValueError, match=r"task\.cache_mib"):
        validate_config(compose_config(tmp_path, "task=train_checklist", "task.cache_mib=-1"))
