"""Peak memory of reading media for a model: a decompression bomb, a long GIF, annotate on large
JPEGs.

    python benchmarks/media_memory.py [--gif-frames 1500] [--gif-width 1024] [--gif-height 512]
        [--items 64] [--side 2048] [--chunk 512] [--image-size 56]
    python benchmarks/media_memory.py --smoke   # seconds: small files, the numbers mean nothing
    PYTHONPATH=/path/to/other/checkout python benchmarks/media_memory.py   # that checkout's vrexp

The files are written to a temporary folder; then each case runs in a fresh interpreter, which
imports what it needs, resets its peak resident set (``/proc/self/clear_refs``, Linux) and reports
the peak (``VmHWM``) above its resident set before the case:

1. ``png_bomb`` / ``gif_bomb``: ``load_for_model`` on a valid 14000 x 14000 PNG (a few hundred
   kilobytes; 588 MB as RGB) and on a small GIF whose second frame claims 14000 x 14000; and
   ``bombs_skipped``: ``annotate`` over both and one good image with ``skip_bad_media``.
2. ``gif_file`` / ``gif_pil``: the frames 8-frame sampling picks from a 1,500-frame GIF, read
   from its path and handed over as an open PIL image (as to the scorer); every frame as RGB
   would be ``frames x width x height x 3`` bytes.
3. ``annotate``: the ``annotate`` stage's loop (``annotate_items``, the tiny Qwen2-VL backbone at
   ``--image-size``) over ``--items`` JPEGs of ``--side`` x ``--side`` in one chunk of
   ``--chunk``: the chunk's media are what is held.

Run it with another checkout's vrexp on ``PYTHONPATH`` to compare before and after a change: the
cases use only entry points that exist on both sides.
"""

from __future__ import annotations

import argparse
import json
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
RESULT_MARK = "RESULT "
CASES = ("png_bomb", "gif_bomb", "bombs_skipped", "gif_file", "gif_pil", "annotate")


# ------------------------------------------------------------------ files
def write_png_bomb(path: Path, width: int, height: int) -> Path:
    """A valid 8-bit RGB PNG of zeros, deflated row by row (never held whole)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = bytes(1 + 3 * width) * 64
    packer = zlib.compressobj(9)
    body = [packer.compress(rows) for _ in range(height // 64)]
    body += [packer.compress(bytes(1 + 3 * width) * (height % 64)), packer.flush()]
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", b"".join(body))
        + chunk(b"IEND", b"")
    )
    return path


def write_gif_bomb(path: Path, width: int, height: int) -> Path:
    """A 16 x 16 two-frame GIF whose second frame's descriptor claims ``width`` x ``height``
    (Pillow grows the canvas to it, and checks its size, only on seeking to that frame)."""
    frames = [Image.new("RGB", (16, 16), colour) for colour in ((0, 0, 0), (255, 255, 255))]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    data = bytearray(path.read_bytes())
    pos = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    descriptors = []
    while data[pos] != 0x3B:  # blocks up to the trailer
        if data[pos] == 0x21:  # an extension: label, then sub-blocks
            pos += 2
        else:  # an image: descriptor, optional local palette, LZW code size, sub-blocks
            descriptors.append(pos)
            flags = data[pos + 9]
            pos += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0) + 1
        while data[pos]:
            pos += data[pos] + 1
        pos += 1
    data[descriptors[1] + 1 : descriptors[1] + 9] = struct.pack("<HHHH", 0, 0, width, height)
    path.write_bytes(bytes(data))
    return path


def write_gif(path: Path, count: int, width: int, height: int) -> Path:
    """``count`` palette frames 40 ms apart, each with bars at positions set by its index."""
    palette = [235, 235, 235, 20, 20, 20, 200, 60, 120] + [0] * (256 * 3 - 9)

    def frame(i: int) -> Image.Image:
        index = np.zeros((height, width), dtype=np.uint8)
        index[: height // 2, (i * 3) % width : (i * 3) % width + 8] = 1
        index[height // 2 :, (i * 7) % width : (i * 7) % width + 8] = 2
        image = Image.fromarray(index, mode="P")
        image.putpalette(palette)
        return image

    frame(0).save(
        path,
        save_all=True,
        append_images=(frame(i) for i in range(1, count)),
        duration=40,
        loop=0,
    )
    return path


def photo(side: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (side // 64, side // 64, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((side, side), Image.Resampling.BICUBIC))
    return np.clip(smooth.astype(np.int16) + rng.integers(-10, 11, smooth.shape), 0, 255).astype(
        np.uint8
    )


def write_folder(folder: Path, names: list[str]) -> Path:
    (folder / "prompts.csv").write_text(
        "media,prompt\n" + "".join(f"{name},a red circle on a sky background\n" for name in names)
    )
    return folder


# ------------------------------------------------------------------ one case, in a worker
def status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def tiny_backbone(image_size: int):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    import vrexp.configs  # noqa: F401
    from vrexp.backbones import build_backbone
    from vrexp.checklist import Checklist
    from vrexp.resources import config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=[
                "paths.root_dir=.",
                "paths.output_dir=.",
                f"backbone.image_size={image_size}",
            ],
        )
    return build_backbone(OmegaConf.to_object(cfg.backbone)).eval(), Checklist.from_config(
        cfg.dimensions
    )


def run_case(case: str, files: Path, image_size: int, chunk: int) -> dict:
    from vrexp.configs import FrameSampling
    from vrexp.media import MediaError, load_for_model

    sampling = FrameSampling(num_frames=8)
    prepared = {}
    if case in ("bombs_skipped", "annotate"):
        from vrexp.data.items import folder_items
        from vrexp.tasks.annotate import annotate_items

        backbone, checklist = tiny_backbone(image_size)
        folder = files / ("bomb_folder" if case == "bombs_skipped" else "jpegs")
        prepared["items"] = folder_items(folder, "prompts.csv")
    if case == "gif_pil":
        from vrexp.reward.inputs import to_model_media

        prepared["image"] = Image.open(files / "long.gif")

    Path("/proc/self/clear_refs").write_text("5")  # the peak starts afresh here
    before = status("VmRSS:")
    start = time.perf_counter()
    outcome: str
    try:
        if case in ("png_bomb", "gif_bomb"):
            load_for_model(files / ("bomb.png" if case == "png_bomb" else "grows.gif"), sampling)
            outcome = "read (not refused)"
        elif case in ("bombs_skipped", "annotate"):
            result = annotate_items(
                backbone,
                checklist,
                prepared["items"],
                files / f"out-{case}",
                batch_size=8,
                chunk_size=chunk,
                skip_bad_media=True,
            )
            outcome = f"{result['items']} items annotated, {len(result['skipped'])} skipped"
            for skipped in result["skipped"]:
                outcome += f"; {skipped['error'][:100]}..."
        elif case == "gif_file":
            clip = load_for_model(files / "long.gif", sampling)
            outcome = f"{len(clip)} frames {clip.frames.shape[1:3]}"
        else:
            clip = to_model_media(prepared["image"], sampling)
            outcome = f"{len(clip)} frames {clip.frames.shape[1:3]}"
    except MediaError as err:
        outcome = f"MediaError: {str(err)[:150]}..."
    except Exception as err:  # what main gave for some cases: the type is the finding
        outcome = f"{type(err).__name__}: {str(err)[:150]}..."
    return {
        "outcome": outcome.replace(str(files), "<tmp>"),
        "peak_above_start_mib": (status("VmHWM:") - before) / 2**20,
        "seconds": time.perf_counter() - start,
    }


def in_fresh_process(case: str, files: Path, image_size: int, chunk: int) -> dict:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        f"--worker={case}",
        f"--files={files}",
        f"--image-size={image_size}",
        f"--chunk={chunk}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if done.returncode or not lines:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
        raise SystemExit(f"case {case} failed (exit {done.returncode})")
    return json.loads(lines[-1].removeprefix(RESULT_MARK))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bomb-side", type=int, default=14000)
    parser.add_argument("--gif-frames", type=int, default=1500)
    parser.add_argument("--gif-width", type=int, default=1024)
    parser.add_argument("--gif-height", type=int, default=512)
    parser.add_argument("--items", type=int, default=64, help="JPEGs annotated in one chunk")
    parser.add_argument("--side", type=int, default=2048, help="the JPEGs' width and height")
    parser.add_argument("--chunk", type=int, default=512, help="annotate's task.chunk_size")
    parser.add_argument("--image-size", type=int, default=56, help="backbone.image_size")
    parser.add_argument(
        "--cases", default=",".join(CASES), help="comma-separated, of " + ", ".join(CASES)
    )
    parser.add_argument("--smoke", action="store_true", help="a tiny run: it still runs")
    parser.add_argument("--out", type=Path, default=None, help="JSON results file")
    parser.add_argument("--worker", choices=CASES, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--files", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = run_case(args.worker, args.files, args.image_size, args.chunk)
        print(RESULT_MARK + json.dumps(result), flush=True)
        return
    if args.smoke:
        args.bomb_side, args.gif_frames, args.gif_width, args.gif_height = 12000, 60, 64, 32
        args.items, args.side = 3, 256
    if not Path("/proc/self/clear_refs").exists():
        raise SystemExit("this benchmark reads Linux's /proc/self (peak resident set)")
    import vrexp

    console = Console(width=180)
    start = time.perf_counter()
    results: dict = {
        "vrexp": str(Path(vrexp.__file__).parent),
        "settings": {k: v for k, v in vars(args).items() if k not in ("worker", "files", "out")},
        "cases": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        files = Path(tmp)
        console.print("[dim]writing the files...[/dim]")
        write_png_bomb(files / "bomb.png", args.bomb_side, args.bomb_side)
        (files / "bomb_folder").mkdir()
        write_gif_bomb(files / "grows.gif", args.bomb_side, args.bomb_side)
        write_png_bomb(files / "bomb_folder" / "bomb.png", args.bomb_side, args.bomb_side)
        write_gif_bomb(files / "bomb_folder" / "grows.gif", args.bomb_side, args.bomb_side)
        Image.fromarray(photo(256, 0)).save(files / "bomb_folder" / "good.png")
        write_folder(files / "bomb_folder", ["good.png", "bomb.png", "grows.gif"])
        write_gif(files / "long.gif", args.gif_frames, args.gif_width, args.gif_height)
        (files / "jpegs").mkdir()
        picture = Image.fromarray(photo(args.side, 1))
        for i in range(args.items):
            picture.save(files / "jpegs" / f"{i:04d}.jpg", quality=90)
        write_folder(files / "jpegs", [f"{i:04d}.jpg" for i in range(args.items)])
        for case in args.cases.split(","):
            console.print(f"[dim]{case}...[/dim]")
            results["cases"][case] = in_fresh_process(case, files, args.image_size, args.chunk)
    rgb = {
        "png_bomb": args.bomb_side**2 * 3,
        "gif_bomb": args.bomb_side**2 * 3,
        "bombs_skipped": 2 * args.bomb_side**2 * 3,
        "gif_file": args.gif_frames * args.gif_width * args.gif_height * 3,
        "gif_pil": args.gif_frames * args.gif_width * args.gif_height * 3,
        "annotate": args.items * args.side**2 * 3,
    }
    table = Table(title=f"Peak memory above the start of each case (vrexp: {results['vrexp']})")
    for column in ("case", "what the user gets", "peak MiB", "all pixels as RGB, MiB", "s"):
        table.add_column(
            column, justify="left" if column in ("case", "what the user gets") else "right"
        )
    for case, r in results["cases"].items():
        table.add_row(
            case,
            r["outcome"],
            f"{r['peak_above_start_mib']:,.1f}",
            f"{rgb[case] / 2**20:,.0f}",
            f"{r['seconds']:.1f}",
        )
    console.print(table)
    out = args.out or ROOT / "outputs" / "benchmarks" / "media_memory.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"wall {time.perf_counter() - start:.0f} s; results in {out}")


if __name__ == "__main__":
    main()
