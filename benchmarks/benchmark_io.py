"""A Pick-a-Pic split of embedded JPEGs, streamed against read whole: items/s and peak memory.

vrexp's streaming loader (``load_benchmark``) against ``pq.read_table`` of the split.

    python benchmarks/benchmark_io.py [--rows 10000,50000] [--side 96] [--shard-rows 5000]
        [--row-group 1000]
    python benchmarks/benchmark_io.py --smoke   # seconds: a few hundred rows, the numbers mean nothing

For each row count a snapshot is written to a temporary folder in the published layout,
``data/test_unique-0000k-of-0000n.parquet`` shards with the columns of the tests' Pick-a-Pic
fixture (``tests/benchmark_fixtures.py``), its ``jpg_0`` / ``jpg_1`` cells ``--side`` x ``--side``
JPEGs (a pool of distinct pictures, reused so that writing 50k rows takes seconds). Then each case
runs in a fresh interpreter, which imports what it needs, resets its peak resident set
(``/proc/self/clear_refs``, Linux) and reports the peak (``VmHWM``) above its resident set before
the case, as ``benchmarks/media_memory.py`` does (its ``status`` helper):

1. ``stream_keys``: ``load_benchmark`` (``dataset=pickapic_v2``), iterating every pair's keys and
   label (no image bytes read).
2. ``stream_decode``: the same, decoding one image per item (``media_a.load()``).
3. ``whole_keys``: ``pq.read_table`` of the split's shards, then the same keys and labels.
4. ``whole_decode``: ``pq.read_table``, then decoding ``jpg_0`` of every row.

Target: the streamed peaks flat in the row count; the whole table's grows with it.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from media_memory import photo, status
from PIL import Image
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
RESULT_MARK = "RESULT "
SPLIT = "test_unique"
CASES = ("stream_keys", "stream_decode", "whole_keys", "whole_decode")
POOL = 64  # distinct pictures per image column


# ------------------------------------------------------------------ files
def write_snapshot(root: Path, rows: int, side: int, shard_rows: int, row_group: int) -> int:
    """``root/data/test_unique-*.parquet``, ``rows`` pairs; returns the bytes written."""
    if str(ROOT) not in sys.path:  # the fixture writer lives in the tests package
        sys.path.insert(0, str(ROOT))
    from tests.benchmark_fixtures import pickapic_table

    pool = []
    for seed in range(2 * POOL):
        buffer = io.BytesIO()
        Image.fromarray(photo(max(side, 64), seed)[:side, :side]).save(buffer, "JPEG", quality=90)
        pool.append(buffer.getvalue())
    labels = np.array([1.0, 0.0, 0.5])[np.arange(rows) % 3]
    shards = -(-rows // shard_rows)
    (root / "data").mkdir(parents=True)
    written = 0
    for k in range(shards):
        start, stop = k * shard_rows, min((k + 1) * shard_rows, rows)
        table = pickapic_table(labels[start:stop].tolist(), uid_prefix=f"s{k}-")
        for column, offset in (("jpg_0", 0), ("jpg_1", POOL)):
            cells = [pool[offset + (start + r) % POOL] for r in range(stop - start)]
            index = table.schema.get_field_index(column)
            table = table.set_column(index, column, pa.array(cells, pa.binary()))
        path = root / "data" / f"{SPLIT}-{k:05d}-of-{shards:05d}.parquet"
        # No dictionary for the images: the pool's repeats would shrink the files far below a
        # real split of distinct images (the hub's writer falls back to plain pages for those).
        plain = [name for name in table.column_names if name not in ("jpg_0", "jpg_1")]
        pq.write_table(table, path, row_group_size=row_group, use_dictionary=plain)
        written += path.stat().st_size
    return written


# ------------------------------------------------------------------ one case, in a worker
def run_case(case: str, root: Path) -> dict:
    from vrexp.configs.choices import Media
    from vrexp.configs.dataset import BenchmarkDatasetConfig
    from vrexp.data.benchmarks import load_benchmark

    config = BenchmarkDatasetConfig(
        name="pickapic_v2",
        media=Media.image,
        hf_id="yuvalkirstain/pickapic_v2",
        root=str(root),
        split=SPLIT,
    )
    files = sorted((root / "data").glob(f"{SPLIT}-*.parquet"))
    # Warm up what both ways load lazily (the JPEG decoder, pyarrow's readers), so that the peak
    # is the reading's, not an import's.
    pq.read_metadata(files[0])
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "JPEG")
    Image.open(buffer).convert("RGB")
    Path("/proc/self/clear_refs").write_text("5")  # the peak starts afresh here
    before = status("VmRSS:")
    start = time.perf_counter()
    items, check = 0, 0
    if case.startswith("stream_"):
        for pair in load_benchmark(config):
            check += len(pair.key_a) + len(pair.key_b) + pair.label
            if case == "stream_decode":
                check += int(pair.media_a.load()[0, 0, 0])
            items += 1
    else:
        table = pa.concat_tables(pq.read_table(file) for file in files)
        columns = ["image_0_uid", "image_1_uid", "label_0"]
        if case == "whole_decode":
            columns.append("jpg_0")
        for batch in table.select(columns).to_batches(max_chunksize=1024):
            for values in batch.to_pylist():
                check += len(values["image_0_uid"]) + len(values["image_1_uid"])
                check += {1.0: 1, 0.0: -1, 0.5: 0}[values["label_0"]]
                if case == "whole_decode":
                    with Image.open(io.BytesIO(values["jpg_0"])) as image:
                        check += int(np.asarray(image.convert("RGB"))[0, 0, 0])
                items += 1
    seconds = time.perf_counter() - start
    return {
        "items": items,
        "check": check,
        "seconds": seconds,
        "items_per_second": items / seconds,
        "peak_above_start_mib": (status("VmHWM:") - before) / 2**20,
    }


def in_fresh_process(case: str, root: Path) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), f"--worker={case}", f"--root={root}"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if done.returncode or not lines:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
        raise SystemExit(f"case {case} failed (exit {done.returncode})")
    return json.loads(lines[-1].removeprefix(RESULT_MARK))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="10000,50000", help="comma-separated row counts")
    parser.add_argument("--side", type=int, default=96, help="the JPEGs' width and height")
    parser.add_argument("--shard-rows", type=int, default=5000, help="rows per parquet shard")
    parser.add_argument("--row-group", type=int, default=1000, help="rows per row group")
    parser.add_argument(
        "--cases", default=",".join(CASES), help="comma-separated, of " + ", ".join(CASES)
    )
    parser.add_argument("--smoke", action="store_true", help="a tiny run: it still runs")
    parser.add_argument("--out", type=Path, default=None, help="JSON results file")
    parser.add_argument("--worker", choices=CASES, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(RESULT_MARK + json.dumps(run_case(args.worker, args.root)), flush=True)
        return
    if args.smoke:
        args.rows, args.side, args.shard_rows, args.row_group = "200,600", 32, 250, 100
    if not Path("/proc/self/clear_refs").exists():
        raise SystemExit("this benchmark reads Linux's /proc/self (peak resident set)")
    import vrexp

    console = Console(width=160)
    start = time.perf_counter()
    results: dict = {
        "vrexp": str(Path(vrexp.__file__).parent),
        "settings": {k: v for k, v in vars(args).items() if k not in ("worker", "root", "out")},
        "rows": {},
    }
    counts = [int(n) for n in args.rows.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        for rows in counts:
            root = Path(tmp) / f"pickapic-{rows}"
            began = time.perf_counter()
            size = write_snapshot(root, rows, args.side, args.shard_rows, args.row_group)
            console.print(
                f"[dim]{rows:,} rows written: {size / 2**20:,.1f} MiB in "
                f"{time.perf_counter() - began:.1f} s[/dim]"
            )
            cases = {}
            for case in args.cases.split(","):
                console.print(f"[dim]{rows:,} rows, {case}...[/dim]")
                cases[case] = in_fresh_process(case, root)
                if cases[case]["items"] != rows:
                    raise SystemExit(f"{case} read {cases[case]['items']} items of {rows}")
            results["rows"][str(rows)] = {"parquet_mib": size / 2**20, "cases": cases}
    labels = {
        "stream_keys": "load_benchmark, keys + labels",
        "stream_decode": "load_benchmark, one image decoded per item",
        "whole_keys": "pq.read_table, keys + labels",
        "whole_decode": "pq.read_table, one image decoded per item",
    }
    table = Table(
        title=f"Pick-a-Pic {SPLIT}, {args.side} x {args.side} JPEGs, {args.shard_rows:,} rows a "
        f"shard, {args.row_group:,} a row group (vrexp: {results['vrexp']})"
    )
    for column in ("way", "rows", "parquet MiB", "items/s", "peak MiB", "s"):
        table.add_column(column, justify="left" if column == "way" else "right")
    for case in args.cases.split(","):
        for rows, r in results["rows"].items():
            c = r["cases"][case]
            table.add_row(
                labels[case],
                f"{int(rows):,}",
                f"{r['parquet_mib']:,.1f}",
                f"{c['items_per_second']:,.0f}",
                f"{c['peak_above_start_mib']:,.1f}",
                f"{c['seconds']:.2f}",
            )
    console.print(table)
    out = args.out or ROOT / "outputs" / "benchmarks" / "benchmark_io.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"wall {time.perf_counter() - start:.0f} s; results in {out}")


if __name__ == "__main__":
    main()
