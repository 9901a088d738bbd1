"""vrexp.media on real files: every format read (shapes, frame counts, timing, colours, which
frames a sampling gets), the frame-selection rules, the errors, and writing PNG / APNG / MP4."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from tests import media_fixtures as fx
from vrexp.atomic import atomic_write
from vrexp.configs import FrameSampling
from vrexp.configs.choices import FrameSelection, Media
from vrexp.media import (
    MAX_PIXELS,
    OFFICIAL_MAX_FRAMES,
    Clip,
    MediaError,
    image_to_rgb,
    load_for_model,
    load_media,
    probe_media,
    read_frames,
    save_media,
    select_frames,
)
from vrexp.media import video as video_module

COUNT_8 = FrameSampling(num_frames=8)
OFFICIAL = FrameSampling(num_frames=24, select="official")
THREE_FPS = FrameSampling(num_frames=24, select="fps", fps=3.0)
# Lossy codecs on the flat halves of a coded frame: within this many levels per channel.
COLOUR_TOLERANCE = 6


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("videos")
    frames = fx.coded_frames(fx.NUM_FRAMES)
    return {
        name: fx.write_video(root / f"{name}{suffix}", codec, container, frames)
        for name, (codec, container, suffix) in fx.VIDEOS.items()
    }


def times_of(count: int, fps: float = fx.FPS) -> np.ndarray:
    return np.arange(count) / fps


# ----------------------------------------------------------------------------- videos
@pytest.mark.parametrize("name", list(fx.VIDEOS))
def test_a_video_probes_and_loads_with_every_frame_in_order(videos, name):
    info = probe_media(videos[name])
    assert info.kind == Media.video and (info.width, info.height) == (fx.WIDTH, fx.HEIGHT)
    assert info.num_frames == fx.NUM_FRAMES and info.fps == pytest.approx(fx.FPS)
    assert info.duration == pytest.approx(fx.NUM_FRAMES / fx.FPS, abs=0.05)
    assert info.codec == fx.CODEC_NAMES[name]
    pixels = load_media(videos[name])
    assert pixels.shape == (fx.NUM_FRAMES, fx.HEIGHT, fx.WIDTH, 3) and pixels.dtype == np.uint8
    assert fx.frame_indices(pixels) == list(range(fx.NUM_FRAMES))
    for frame in pixels[::10]:
        np.testing.assert_allclose(fx.bottom_colour(frame), fx.COLOUR, atol=COLOUR_TOLERANCE)


@pytest.mark.parametrize("name", list(fx.VIDEOS))
@pytest.mark.parametrize(
    "sampling", [COUNT_8, OFFICIAL, THREE_FPS], ids=["count", "official", "fps"]
)
def test_read_frames_decodes_the_frames_the_sampling_picks(videos, name, sampling):
    clip = read_frames(videos[name], sampling)
    expected = select_frames(times_of(fx.NUM_FRAMES), sampling)
    assert fx.frame_indices(clip.frames) == expected.tolist()
    np.testing.assert_allclose(clip.timestamps, expected / fx.FPS, atol=1e-6)
    assert clip.frames.dtype == np.uint8 and clip.sampled_with == sampling
    np.testing.assert_allclose(fx.bottom_colour(clip.frames[-1]), fx.COLOUR, atol=COLOUR_TOLERANCE)


def test_the_official_rule_takes_the_frame_nearest_each_second_at_25_fps(videos):
    clip = read_frames(videos["mp4_h264"], OFFICIAL)
    # 75 frames end at 2.96 s, which rounds to 3: seconds 0, 1, 2, 3.
    assert fx.frame_indices(clip.frames) == [0, 25, 50, 74]
    np.testing.assert_allclose(clip.timestamps, [0.0, 1.0, 2.0, 2.96], atol=1e-6)
    capped = read_frames(videos["mp4_h264"], FrameSampling(num_frames=2, select="official"))
    assert fx.frame_indices(capped.frames) == [0, 25]


@pytest.mark.parametrize("container, suffix", [("mp4", ".mp4"), ("matroska", ".mkv")])
def test_the_official_rule_on_a_variable_frame_rate_clip(tmp_path, container, suffix):
    times = fx.VARIABLE_TIMES
    path = fx.write_video(
        tmp_path / f"vfr{suffix}", "libx264", container, fx.coded_frames(len(times)), times=times
    )
    clip = read_frames(path, OFFICIAL)
    # last frame at 3.62 s: seconds 0..4, each the nearest frame (0.9 is nearer 1 than 1.2 is)
    assert fx.frame_indices(clip.frames) == [0, 3, 6, 8, 10]
    np.testing.assert_allclose(clip.timestamps, [0.0, 0.9, 2.1, 2.95, 3.62], atol=1e-3)
    for second, time in enumerate(clip.timestamps):
        assert (
            np.argmin(np.abs(np.asarray(times) - second)) == fx.frame_indices(clip.frames)[second]
        )
        assert abs(time - second) <= 0.5


def test_read_frames_converts_only_the_picked_frames_and_skips_by_seeking(videos, monkeypatch):
    converted, decoded = [], []
    rgb, frames = video_module._rgb, video_module._frames
    monkeypatch.setattr(video_module, "_rgb", lambda f: converted.append(f.pts) or rgb(f))

    def counting(*args, **kwargs):
        for frame in frames(*args, **kwargs):
            decoded.append(frame.pts)
            yield frame

    monkeypatch.setattr(video_module, "_frames", counting)
    sampling = FrameSampling(num_frames=4)
    clip = read_frames(videos["mp4_h264"], sampling)
    assert fx.frame_indices(clip.frames) == [0, 25, 49, 74]
    assert len(converted) == 4
    # Keyframes every 10 frames: each pick is reached from the keyframe before it, so frames
    # between an earlier pick and that keyframe are never decoded.
    assert len(decoded) < fx.NUM_FRAMES // 2


def test_a_video_array_becomes_a_clip_with_times_from_its_frame_rate():
    frames = fx.coded_frames(5)
    clip = Clip.from_array(frames, 4.0)
    np.testing.assert_array_equal(clip.timestamps, [0.0, 0.25, 0.5, 0.75, 1.0])
    assert clip.sampled_with is None and len(clip) == 5 and clip.frames is frames
    picked = clip.sample(FrameSampling(num_frames=3))
    assert (
        fx.frame_indices(picked.frames) == [0, 2, 4]
        and picked.sample(picked.sampled_with) is picked
    )
    with pytest.raises(ValueError, match="timestamps of shape"):
        Clip(frames, np.zeros(4))
    with pytest.raises(ValueError, match="must not decrease"):
        Clip(frames, np.array([0.0, 1.0, 0.5, 2.0, 3.0]))


# ----------------------------------------------------------------------------- animations
def test_an_apng_is_timed_by_its_frame_durations(tmp_path):
    frames = fx.coded_frames(len(fx.ANIMATION_MS))
    path = fx.write_animation(tmp_path / "a.png", frames, fx.ANIMATION_MS, format="PNG")
    info = probe_media(path)
    assert (info.kind, info.codec, info.num_frames) == (Media.video, "apng", 8)
    assert info.duration == pytest.approx(1.2) and info.fps == pytest.approx(8 / 1.2)
    np.testing.assert_array_equal(load_media(path), frames)  # lossless
    clip = read_frames(path, OFFICIAL)
    # frames start at 0, .1, .3, .4, .7, .8, .9, 1.1 s; for second 1, 0.9 and 1.1 tie: the earlier
    np.testing.assert_allclose(clip.timestamps, [0.0, 0.9])
    np.testing.assert_array_equal(clip.frames, frames[[0, 6]])
    clip = read_frames(path, FrameSampling(num_frames=4))  # targets 0, 0.37, 0.73, 1.1 s
    assert fx.frame_indices(clip.frames) == [0, 3, 4, 7]


@pytest.mark.parametrize("suffix, save", [(".gif", {}), (".webp", {"lossless": True})])
def test_animated_gif_and_webp_read_exactly_with_their_times(tmp_path, suffix, save):
    frames = fx.coded_frames(12)
    path = fx.write_animation(tmp_path / f"a{suffix}", frames, [100] * 12, **save)
    info = probe_media(path)
    assert (info.kind, info.num_frames, info.width, info.height) == (Media.video, 12, 64, 48)
    assert info.fps == pytest.approx(10.0) and info.duration == pytest.approx(1.2)
    np.testing.assert_array_equal(load_media(path), frames)
    clip = read_frames(path, THREE_FPS)
    expected = select_frames(np.arange(12) / 10.0, THREE_FPS)
    assert expected.tolist() == [0, 3, 7, 10]
    np.testing.assert_array_equal(clip.frames, frames[expected])
    np.testing.assert_allclose(clip.timestamps, expected / 10.0)


def test_an_animation_without_durations_is_timed_by_source_fps(tmp_path):
    frames = fx.coded_frames(6)
    path = fx.write_animation(tmp_path / "a.gif", frames, [0] * 6)
    info = probe_media(path)
    assert info.num_frames == 6 and info.fps is None and info.duration is None
    clip = read_frames(path, FrameSampling(num_frames=6, source_fps=5.0))
    np.testing.assert_allclose(clip.timestamps, np.arange(6) / 5.0)


# ----------------------------------------------------------------------------- images
def test_a_jpeg_is_turned_by_its_exif_orientation(tmp_path):
    path = fx.jpeg_with_orientation(tmp_path / "o.jpg", 6)  # stored 40 x 20: shown rotated 90 CW
    info = probe_media(path)
    assert (info.kind, info.width, info.height, info.num_frames) == (Media.image, 20, 40, 1)
    assert info.fps is None and info.codec == "jpeg"
    pixels = load_media(path)
    assert pixels.shape == (40, 20, 3)
    np.testing.assert_allclose(pixels[5:15].reshape(-1, 3).mean(0), (255, 0, 0), atol=8)
    np.testing.assert_allclose(pixels[25:35].reshape(-1, 3).mean(0), (0, 0, 255), atol=8)


def save_image(path: Path, image: Image.Image, **options) -> Path:
    image.save(path, **options)
    return path


RGB = np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    "suffix, options", [(".png", {}), (".bmp", {}), (".tiff", {}), (".webp", {"lossless": True})]
)
def test_lossless_rgb_images_read_exactly(tmp_path, suffix, options):
    path = save_image(tmp_path / f"i{suffix}", Image.fromarray(RGB), **options)
    pixels = load_media(path)
    assert pixels.dtype == np.uint8
    np.testing.assert_array_equal(pixels, RGB)
    assert probe_media(path).kind == Media.image


def test_sixteen_bit_greyscale_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
    path = save_image(tmp_path / "g16.png", Image.fromarray(values))
    assert Image.open(path).mode == "I;16"
    np.testing.assert_array_equal(load_media(path)[0, :, 0], [0, 1, 128, 255])
    assert (load_media(path)[..., 0] == load_media(path)[..., 2]).all()
    big_endian = Image.frombytes("I;16B", (4, 1), values.astype(">u2").tobytes())
    np.testing.assert_array_equal(image_to_rgb(big_endian)[0, :, 1], [0, 1, 128, 255])
    as_int32 = Image.fromarray(values.astype(np.int32))
    assert as_int32.mode == "I"
    np.testing.assert_array_equal(image_to_rgb(as_int32)[0, :, 2], [0, 1, 128, 255])


def test_transparency_is_composited_over_the_background(tmp_path):
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., 0] = 200  # red 200, alpha 0 / 64 / 128 / 255
    rgba[..., 3] = [[0, 64], [128, 255]]
    path = save_image(tmp_path / "a.png", Image.fromarray(rgba))
    over_white = load_media(path)
    alpha = rgba[..., 3:] / 255.0
    np.testing.assert_allclose(over_white, alpha * [200, 0, 0] + (1 - alpha) * 255, atol=1)
    over_black = load_media(path, background=(0, 0, 0))
    np.testing.assert_allclose(over_black, alpha * [200, 0, 0], atol=1)
    la = save_image(
        tmp_path / "la.png", Image.fromarray(np.array([[[100, 0], [100, 255]]], np.uint8), "LA")
    )
    np.testing.assert_array_equal(load_media(la)[0], [[255, 255, 255], [100, 100, 100]])


def test_palette_greyscale_and_still_gif_images(tmp_path):
    palette = Image.new("P", (3, 1))
    palette.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255])
    palette.putdata([0, 1, 2])
    plain = save_image(tmp_path / "p.png", palette)
    np.testing.assert_array_equal(load_media(plain)[0], [[255, 0, 0], [0, 255, 0], [0, 0, 255]])
    transparent = save_image(tmp_path / "t.png", palette, transparency=1)
    np.testing.assert_array_equal(
        load_media(transparent, background=(9, 9, 9))[0], [[255, 0, 0], [9, 9, 9], [0, 0, 255]]
    )
    gif = save_image(tmp_path / "s.gif", palette)
    assert probe_media(gif).kind == Media.image and probe_media(gif).num_frames == 1
    np.testing.assert_array_equal(load_media(gif), load_media(plain))
    grey = save_image(tmp_path / "l.png", Image.fromarray(np.array([[0, 77, 255]], np.uint8)))
    np.testing.assert_array_equal(load_media(grey)[0], [[0] * 3, [77] * 3, [255] * 3])


def test_cmyk_and_float_images_become_rgb():
    cmyk = Image.new("CMYK", (2, 1), (0, 255, 255, 0))  # no black, full magenta and yellow: red
    np.testing.assert_array_equal(image_to_rgb(cmyk), [[[255, 0, 0]] * 2])
    floats = Image.fromarray(np.array([[-3.0, 10.4, 254.6, 300.0]], dtype=np.float32))
    assert floats.mode == "F"
    np.testing.assert_array_equal(image_to_rgb(floats)[0, :, 0], [0, 10, 255, 255])


def test_load_for_model_gives_an_image_array_or_a_sampled_clip(tmp_path, videos):
    image = save_image(tmp_path / "i.png", Image.fromarray(RGB))
    np.testing.assert_array_equal(load_for_model(image, COUNT_8), RGB)
    clip = load_for_model(videos["webm_vp9"], COUNT_8)
    assert isinstance(clip, Clip) and clip.sampled_with == COUNT_8 and len(clip) == 8
    animation = fx.write_animation(tmp_path / "a.png", fx.coded_frames(10), [50] * 10, format="PNG")
    clip = load_for_model(animation, COUNT_8)
    assert isinstance(clip, Clip) and fx.frame_indices(clip.frames) == [0, 1, 3, 4, 5, 6, 8, 9]
    with pytest.raises(MediaError, match="a still image, not a video"):
        read_frames(image, COUNT_8)


# ----------------------------------------------------------------------------- errors
def raises(path: Path, match: str, read=load_media, **kwargs) -> MediaError:
    with pytest.raises(MediaError, match=match) as err:
        read(path, **kwargs)
    assert str(path) in str(err.value) and isinstance(err.value, OSError)
    return err.value


def test_missing_empty_and_non_media_files_are_named(tmp_path):
    raises(tmp_path / "absent.mp4", "media file not found")
    raises(tmp_path, "not a file")
    (tmp_path / "empty.png").write_bytes(b"")
    raises(tmp_path / "empty.png", r"empty file \(0 bytes\)", probe_media)
    (tmp_path / "notes.mp4").write_text("these are notes, not a video\n")
    raises(tmp_path / "notes.mp4", "not a media file", read_frames, sampling=COUNT_8)
    # FFmpeg would open any file named .png, going by the name alone
    (tmp_path / "fake.png").write_text("not an image either\n")
    raises(tmp_path / "fake.png", "not a media file", probe_media)


def test_truncated_files_are_reported_as_truncated(tmp_path, videos):
    def cut(source: Path, name: str) -> Path:
        data = source.read_bytes()
        (tmp_path / name).write_bytes(data[: len(data) // 2])
        return tmp_path / name

    # The index (moov) is written last by default: half a file has none.
    raises(cut(videos["mp4_h264"], "a.mp4"), "truncated or corrupt MP4 / MOV file", probe_media)
    raises(cut(videos["avi_mpeg4"], "a.avi"), "truncated or corrupt AVI file")
    # save_media puts the index first: the header promises frames the data does not hold.
    save_media(tmp_path / "fast.mp4", fx.coded_frames(40), fps=10)
    half = cut(tmp_path / "fast.mp4", "b.mp4")
    raises(half, "truncated: its header promises 40 frames", read_frames, sampling=COUNT_8)
    raises(half, "truncated: its header promises 40 frames")
    png = save_image(tmp_path / "i.png", Image.fromarray(RGB))
    raises(cut(png, "c.png"), "truncated or corrupt image")
    jpeg = save_image(tmp_path / "i.jpg", Image.fromarray(np.tile(RGB, (8, 8, 1))), quality=90)
    raises(cut(jpeg, "d.jpg"), "truncated or corrupt image")


def test_a_cut_webm_is_read_as_far_as_it_goes_with_a_warning(tmp_path, videos, caplog):
    data = videos["webm_vp9"].read_bytes()
    (tmp_path / "cut.webm").write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING, logger="vrexp.media.video"):
        pixels = load_media(tmp_path / "cut.webm")
    # Matroska states no frame count, only a duration: the frames kept are a prefix.
    assert 0 < len(pixels) < fx.NUM_FRAMES
    assert fx.frame_indices(pixels) == list(range(len(pixels)))
    assert "header states 3.00 s; truncated?" in caplog.text


def test_the_pixel_limit_refuses_a_decompression_bomb_before_decoding(tmp_path, videos):
    bomb = fx.png_claiming_size(tmp_path / "bomb.png", 9000, 9000)  # 81 Mpx in ~10 kB
    assert bomb.stat().st_size < 20_000 and MAX_PIXELS < 9000 * 9000
    raises(bomb, "9000x9000 = 81,000,000 pixels per frame is over the limit of 67,108,864")
    raises(bomb, "over the limit", load_for_model, sampling=COUNT_8)
    assert load_media(bomb, max_pixels=None).shape == (9000, 9000, 3)
    raises(
        videos["mkv_h264"],
        "64x48 = 3,072 pixels per frame is over the limit of 3,000",
        max_pixels=3000,
    )
    raises(videos["mkv_h264"], "over the limit", read_frames, sampling=COUNT_8, max_pixels=3000)


def test_files_without_a_decodable_video_stream(tmp_path):
    raises(fx.write_audio_only(tmp_path / "a.m4a"), r"no video stream \(it holds audio\)")
    raises(
        fx.write_undecodable_codec(tmp_path / "avs2.avi", tmp_path / "src.avi"),
        "its video codec cannot be decoded by this FFmpeg build",
        probe_media,
    )
    empty = tmp_path / "empty.avi"
    with fx.av.open(str(empty), "w", format="avi") as container:
        stream = container.add_stream("mpeg4", rate=fx.FPS)
        stream.width, stream.height, stream.pix_fmt = fx.WIDTH, fx.HEIGHT, "yuv420p"
        container.start_encoding()
    raises(empty, "the video stream holds no frames", read_frames, sampling=COUNT_8)


# ----------------------------------------------------------------------------- writing
def gradient_video(count: int = 20) -> np.ndarray:
    t, y, x = np.ogrid[:count, : fx.HEIGHT, : fx.WIDTH]
    shape = (count, fx.HEIGHT, fx.WIDTH)
    channels = [x * 3 + t * 2, y * 4 + t, 128 + 0 * x]
    return np.stack([np.broadcast_to(c, shape) for c in channels], -1).clip(0, 255).astype(np.uint8)


def test_an_mp4_round_trip_keeps_frames_rate_and_pixels_within_the_codec_error(tmp_path):
    video = gradient_video()
    path = tmp_path / "v.mp4"
    save_media(path, video, fps=10)
    info = probe_media(path)
    assert (info.codec, info.num_frames, info.fps, info.duration) == ("h264", 20, 10.0, 2.0)
    back = load_media(path)
    assert back.shape == video.shape
    # H.264 at CRF 18 in yuv420p: mean error about 1.7 levels on this gradient; bound 3.
    assert np.abs(back.astype(int) - video.astype(int)).mean() < 3.0
    data = path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # faststart: playable while streaming
    clip = read_frames(path, FrameSampling(num_frames=20, select="fps", fps=5.0))
    # every 0.2 s; the last frame, at 1.9 s, is 9.5 periods in: it rounds (to even) to the 10th
    np.testing.assert_allclose(clip.timestamps, [*(np.arange(10) / 5.0), 1.9])


def test_an_apng_round_trip_is_exact_and_keeps_the_rate(tmp_path):
    video = fx.coded_frames(6)
    video[3] = video[2]  # identical neighbours stay two frames
    save_media(tmp_path / "v.png", video, fps=5.0)
    np.testing.assert_array_equal(load_media(tmp_path / "v.png"), video)
    assert probe_media(tmp_path / "v.png").fps == pytest.approx(5.0)
    save_media(tmp_path / "i.png", video[0])
    np.testing.assert_array_equal(load_media(tmp_path / "i.png"), video[0])


def test_save_media_refuses_what_it_cannot_write_and_leaves_no_file(tmp_path):
    video = fx.coded_frames(3)
    with pytest.raises(MediaError, match="needs an even width and height; got 63x48"):
        save_media(tmp_path / "odd.mp4", video[:, :, :63])
    with pytest.raises(MediaError, match=r"cannot write \.webm; .*\.png .*\.mp4"):
        save_media(tmp_path / "v.webm", video)
    with pytest.raises(MediaError, match=r"write an image as \.png"):
        save_media(tmp_path / "i.mp4", video[0])
    with pytest.raises(MediaError, match="uint8"):
        save_media(tmp_path / "f.png", video.astype(np.float32))
    assert list(tmp_path.iterdir()) == []

    def fails(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "x.bin", fails)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- selection
def samplings() -> st.SearchStrategy[FrameSampling]:
    count = st.integers(1, 30)
    return st.one_of(
        count.map(lambda n: FrameSampling(num_frames=n)),
        st.builds(
            lambda n, fps: FrameSampling(num_frames=n, select="fps", fps=fps),
            count,
            st.floats(0.1, 30.0),
        ),
        count.map(lambda n: FrameSampling(num_frames=n, select="official")),
    )


# Times in eighths of a second hit every rounding tie; free floats hit none.
TIMES = st.one_of(
    st.lists(st.integers(0, 400), min_size=1, max_size=80).map(lambda t: np.sort(t) / 8.0),
    st.lists(st.floats(0.0, 60.0), min_size=1, max_size=80).map(np.sort),
)


@settings(max_examples=300, deadline=None)
@given(times=TIMES, sampling=samplings())
def test_selection_is_sorted_unique_bounded_and_idempotent(times, sampling):
    picked = select_frames(times, sampling)
    assert picked.dtype == np.int64
    assert np.all(np.diff(picked) > 0) and picked[0] == 0 and picked[-1] < len(times)
    rule = FrameSelection(sampling.select)
    if rule == FrameSelection.count:
        assert len(picked) == min(sampling.num_frames, len(times))
    elif rule == FrameSelection.fps:
        assert 1 <= len(picked) <= sampling.num_frames
    else:
        assert 1 <= len(picked) <= min(sampling.num_frames, OFFICIAL_MAX_FRAMES)
    again = select_frames(times[picked], sampling)
    np.testing.assert_array_equal(again, np.arange(len(picked)))


def released_official_rule(times: np.ndarray) -> list[int]:
    """The released VisionReward-Video loader's frame choice, as it is written there."""
    times = list(times - times[0])
    chosen = []
    for second in range(round(max(times)) + 1):
        closest = min(times, key=lambda t: abs(t - second))
        chosen.append(times.index(closest))
        if len(chosen) >= OFFICIAL_MAX_FRAMES:
            break
    return sorted(set(chosen))


@settings(max_examples=200, deadline=None)
@given(
    count=st.integers(1, 900),
    fps=st.one_of(
        st.sampled_from([1.0, 4.0, 8.0, 23.976, 24.0, 25.0, 30.0, 60.0]), st.floats(1.0, 60.0)
    ),
    start=st.sampled_from([0.0, 0.033, 1.5]),
)
def test_the_official_rule_matches_the_released_code_on_constant_rate_clips(count, fps, start):
    times = start + np.arange(count) / fps
    assert select_frames(times, OFFICIAL).tolist() == released_official_rule(times)


def test_the_fps_rule_needs_fps_and_only_it():
    with pytest.raises(ValueError, match=r"backbone.frames.fps \(set it when select=fps"):
        FrameSampling(select="fps")
    with pytest.raises(ValueError, match=r"backbone.frames.fps \(set it when select=fps"):
        FrameSampling(fps=1.0)
    assert select_frames(np.array([]), COUNT_8).tolist() == []
    with pytest.raises(ValueError, match="non-decreasing"):
        select_frames(np.array([1.0, 0.0]), COUNT_8)


def test_a_clip_in_a_batch_survives_lightnings_device_transfer():
    # Lightning moves every batch with apply_to_collection, which refuses frozen dataclasses.
    from lightning_fabric.utilities.apply_func import move_data_to_device

    clip = Clip.from_array(np.zeros((3, 4, 4, 3), np.uint8), fps=8.0)
    batch = {"media": [clip], "label": torch.ones(1)}
    moved = move_data_to_device(batch, torch.device("cpu"))
    assert moved["media"][0] is clip
    with pytest.raises(AttributeError, match="immutable"):
        clip.frames = np.zeros((1, 4, 4, 3), np.uint8)
