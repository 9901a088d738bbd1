"""Sampled-frame video decoding against decoding every frame: time and peak memory.

    python benchmarks/media_decode.py [--seconds 20] [--width 1280] [--height 720] [--fps 25]
        [--keyframe-seconds 2] [--memory-seconds 10,60] [--repeats 3]
    python benchmarks/media_decode.py --smoke   # seconds: a small clip, the numbers mean nothing

An H.264 clip (libx264, preset veryfast, B-frames, a keyframe every ``--keyframe-seconds``: 2 s is
the usual streaming GOP) of a moving texture is written to a temporary folder. Then, side by side:

1. Time: ``read_frames`` with 8 and with 24 count-sampled frames (demux the packets, seek to the
   keyframe before each picked frame, decode forward, convert only the picked frames) against the
   naive way, ``load_media`` (every frame decoded and converted) and then picking the same frames.
   Best of ``--repeats``. Target: >= 5x faster at 8 frames.
2. Peak memory, each case in a fresh interpreter: its peak resident set (``VmHWM``; ``ru_maxrss``
   where there is no /proc) minus that of an interpreter that only imports the same modules, for
   clips of ``--memory-seconds``. The sampled path's peak stays
   at its frames' size whatever the clip's length; decoding everything grows with it.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table

from vrexp.configs import FrameSampling
from vrexp.media import load_media, read_frames, select_frames

ROOT = Path(__file__).resolve().parents[1]
RESULT_MARK = "RESULT "
CASES = ("baseline", "decode_all", "sampled_8", "sampled_24")


def write_clip(path: Path, seconds: float, width: int, height: int, fps: int, gop: float) -> Path:
    """A camera-like pan over a smooth random texture with a little grain, so that every frame
    costs real decoding (flat frames decode in no time; pure noise is all I-frame bits)."""
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (max(height // 16, 2), max(width // 8, 2), 3), dtype=np.uint8)
    smooth = Image.fromarray(coarse).resize((2 * width, height), Image.Resampling.BICUBIC)
    grain = rng.integers(0, 24, (height, 2 * width, 3), dtype=np.uint8)
    texture = np.asarray(smooth, dtype=np.uint8) // 4 * 3 + grain
    ramp = np.linspace(0, 40, width, dtype=np.float32)[None, :, None]
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps, options={"preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = max(round(gop * fps), 1)
        for i in range(round(seconds * fps)):
            shift = (4 * i) % width
            frame = (texture[:, shift : shift + width] + ramp).astype(np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def sampling(count: int) -> FrameSampling:
    return FrameSampling(num_frames=count)


def decode_all_then_pick(path: Path, count: int) -> np.ndarray:
    frames = load_media(path)
    times = np.arange(len(frames), dtype=np.float64)  # evenly spaced: index spacing = time's
    return frames[select_frames(times, sampling(count))]


def run_case(case: str, path: Path) -> None:
    """One case, in this (fresh) interpreter; prints its peak resident memory."""
    if case == "decode_all":
        decode_all_then_pick(path, 8)
    elif case.startswith("sampled_"):
        read_frames(path, sampling(int(case.removeprefix("sampled_"))))
    print(RESULT_MARK + json.dumps({"peak_bytes": peak_resident_bytes()}), flush=True)


def peak_resident_bytes() -> int:
    """This process's peak resident set. Linux's ``VmHWM`` starts afresh at exec; ``ru_maxrss``
    does not (a child starts from its parent's peak, here the timed decode-all), so it is only the
    fallback where /proc is absent."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def peak_in_fresh_process(case: str, path: Path) -> int:
    command = [sys.executable, str(Path(__file__).resolve()), f"--worker={case}", f"--clip={path}"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if done.returncode or not lines:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"case {case} failed (exit {done.returncode})")
    return json.loads(lines[-1].removeprefix(RESULT_MARK))["peak_bytes"]


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the timed clip")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--keyframe-seconds", type=float, default=2.0)
    parser.add_argument("--memory-seconds", default="10,60", help="clip lengths for the peaks")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="a tiny run: it still runs")
    parser.add_argument("--out", type=Path, default=None, help="JSON results file")
    parser.add_argument("--worker", choices=CASES, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--clip", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_case(args.worker, args.clip)
        return
    if args.smoke:
        args.seconds, args.width, args.height, args.repeats = 4.0, 320, 180, 1
        args.memory_seconds = "2,6"
    memory_seconds = [float(s) for s in args.memory_seconds.split(",")]
    size = f"{args.width}x{args.height}"
    console = Console()
    start = time.perf_counter()
    results: dict = {
        "settings": {k: v for k, v in vars(args).items() if k not in ("worker", "clip", "out")}
    }
    with tempfile.TemporaryDirectory() as tmp:
        console.print(f"[dim]writing a {args.seconds:g} s {size} H.264 clip...[/dim]")
        clip = write_clip(
            Path(tmp) / "timed.mp4",
            args.seconds,
            args.width,
            args.height,
            args.fps,
            args.keyframe_seconds,
        )
        for count in (8, 24):  # the two ways agree on the pixels before they are timed
            np.testing.assert_array_equal(
                read_frames(clip, sampling(count)).frames, decode_all_then_pick(clip, count)
            )
        times = {"decode_all": best_of(args.repeats, lambda: decode_all_then_pick(clip, 8))}
        for count in (8, 24):
            times[f"sampled_{count}"] = best_of(
                args.repeats, lambda count=count: read_frames(clip, sampling(count))
            )
        results["seconds"] = times
        table = Table(
            title=f"Decoding a {args.seconds:g} s {size} {args.fps} fps H.264 clip "
            f"(keyframe every {args.keyframe_seconds:g} s), best of {args.repeats}"
        )
        for column in ("way", "seconds", "speed-up over decode-all"):
            table.add_column(column, justify="left" if column == "way" else "right")
        labels = {
            "decode_all": "load_media (every frame), then pick 8",
            "sampled_8": "read_frames, 8 frames",
            "sampled_24": "read_frames, 24 frames",
        }
        for case, seconds in times.items():
            table.add_row(labels[case], f"{seconds:.3f}", f"{times['decode_all'] / seconds:.1f}x")
        console.print(table)

        peaks: dict[str, dict[str, float]] = {}
        for seconds in memory_seconds:
            console.print(f"[dim]peak memory on a {seconds:g} s clip, fresh processes...[/dim]")
            path = write_clip(
                Path(tmp) / f"m{seconds:g}.mp4",
                seconds,
                args.width,
                args.height,
                args.fps,
                args.keyframe_seconds,
            )
            baseline = peak_in_fresh_process("baseline", path)
            peaks[f"{seconds:g}"] = {
                case: (peak_in_fresh_process(case, path) - baseline) / 2**20
                for case in ("decode_all", "sampled_8", "sampled_24")
            }
        results["peak_above_imports_mib"] = peaks
    frame_mib = args.width * args.height * 3 / 2**20
    table = Table(
        title=f"Peak memory above an interpreter that only imports (MiB; one {size} RGB frame is "
        f"{frame_mib:.1f} MiB)"
    )
    for column in ("clip", "decode-all", "read_frames 8", "read_frames 24"):
        table.add_column(column, justify="right")
    for seconds, row in peaks.items():
        table.add_row(
            f"{seconds} s",
            *(f"{row[c]:,.1f}" for c in ("decode_all", "sampled_8", "sampled_24")),
        )
    console.print(table)
    out = args.out or ROOT / "outputs" / "benchmarks" / f"media_decode-{size}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"wall {time.perf_counter() - start:.0f} s; results in {out}")


if __name__ == "__main__":
    main()
