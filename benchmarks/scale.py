"""Peak memory and items/s of `train_checklist` and `annotate` as the SynthWorld split grows.

    python benchmarks/scale.py [--items 2000 20000] [--processes 1 2]
        [--stages train_checklist annotate] [--epochs 1] [--max-steps N]
    python benchmarks/scale.py --items 500 5000        # a quicker pair of sizes
    python benchmarks/scale.py --small-model           # a smaller model: the same media and inputs
    python benchmarks/scale.py --smoke                 # a minute: the numbers mean nothing
    PYTHONPATH=/path/to/other/checkout python benchmarks/scale.py   # that checkout's vrexp

For each item count a SynthWorld-Image split is rendered first (``run.py task=make_data``, not
measured; ``dataset.num_prompts`` = items / 3, kept under ``--work-dir`` for later runs). Then every
stage runs as a user runs it, ``python run.py task=...`` in its own process (``logger=csv``, no
progress bar), and is measured from outside:

- **peak RSS** of the largest process: the ``ru_maxrss`` that ``os.wait4`` reports for the
  process, which includes the children it waited for (Lightning's DDP workers);
- **peak RSS of all processes**: the sum of the resident sets of the process tree, sampled every
  0.2 s (``psutil``), for the 2-process runs;
- **items/s**: the split's items over the run's wall seconds (start-up included; for
  ``train_checklist``: the training budget, its validation and the test part), which depends on
  the machine's load (printed with it), unlike the peaks; and the run's **CPU seconds** (user +
  system, children included), which depend on it far less.

``train_checklist`` trains ``--epochs`` epochs (or ``--max-steps`` steps) from scratch, with the
default tiny backbone or (``--small-model``) debug=smoke's dimensions at the default image size;
``annotate`` answers the whole split with the model that the first ``train_checklist`` run saved
(a 2-step model is trained, unmeasured, when that stage is not run). ``--processes 2`` runs
``train_checklist`` with ``trainer=ddp_cpu`` (two gloo processes) and ``annotate``
as two array-style processes at once (``task.shard=0/2`` and ``task.shard=1/2``), the second one's
items/s over the slower shard's wall time. Every command is composed first in this process, so a
vrexp that does not accept an override stops with what the option needs.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
RENDERS_PER_PROMPT = 3  # synthworld_image's
STAGES = ("train_checklist", "annotate")
COMMON = ("logger=csv", "trainer.enable_progress_bar=false")
DDP = ("trainer=ddp_cpu",)
# debug=smoke's backbone dimensions at the default image size: the same per-item inputs (what the
# caches hold), a fraction of the training compute.
SMALL_MODEL = (
    "backbone.tiny.hidden_size=32",
    "backbone.tiny.num_layers=1",
    "backbone.tiny.intermediate_size=64",
    "backbone.tiny.vision_hidden_size=32",
    "backbone.tiny.vision_layers=1",
)
NEEDS = {
    "train_checklist": "`trainer=ddp_cpu` for train_checklist "
    "(DDP training on CPU, issue 16 point 1)",
    "annotate": "`task.shard=I/N` for annotate (sharded inference, issue 16 point 2)",
}
log = logging.getLogger("scale")


@dataclass
class Measured:
    seconds: float
    peak_rss: int  # bytes, the largest process (with the children it waited for)
    tree_peak: int  # bytes, the sampled sum over the process tree
    cpu_seconds: float  # user + system, with the children it waited for: far less load-bound
    returncode: int
    tail: str


THREADS: int | None = None  # --threads: OMP_NUM_THREADS of the runs (None: torch's default)


def entry_point() -> Path:
    """The ``run.py`` beside the vrexp this process imports (another checkout's, through
    ``PYTHONPATH``): Python puts a script's own folder first on its path, so this repository's
    ``run.py`` would always run this repository's vrexp."""
    import vrexp

    run = Path(vrexp.__file__).resolve().parents[1] / "run.py"
    if not run.exists():
        raise SystemExit(f"this benchmark needs a checkout's run.py; {run} does not exist")
    return run


def run_measured(args: list[str], log_file: Path, nice: int) -> Measured:
    """``python run.py ARGS`` in a child; its peak resident set and wall time."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    if THREADS is not None:
        env["OMP_NUM_THREADS"] = str(THREADS)
    # nice execs the interpreter: the pid waited for is the run's own.
    command = ["nice", "-n", str(nice), sys.executable, str(entry_point()), *args]
    log.debug("running %s", " ".join(command))
    start = time.perf_counter()
    with log_file.open("w") as out:
        child = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        tree_peak = [0]
        done = threading.Event()

        def sample() -> None:
            parent = psutil.Process(child.pid)
            while not done.wait(0.2):
                try:
                    procs = [parent, *parent.children(recursive=True)]
                    total = sum(p.memory_info().rss for p in procs if p.is_running())
                except psutil.Error:
                    continue
                tree_peak[0] = max(tree_peak[0], total)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(child.pid, 0)
        done.set()
        sampler.join()
    seconds = time.perf_counter() - start
    tail = log_file.read_text(errors="replace")[-3000:]
    return Measured(
        seconds,
        usage.ru_maxrss * 1024,
        tree_peak[0],
        usage.ru_utime + usage.ru_stime,
        os.waitstatus_to_exitcode(status),
        tail,
    )


def compose_check(overrides: list[str], processes: int, stage: str) -> None:
    """Compose and validate ``overrides`` as ``run.py`` would; stop naming what is missing."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    import vrexp.configs
    from vrexp.resources import config_dir

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            cfg = compose(config_name="config", overrides=[*overrides, "paths.output_dir=x"])
        vrexp.configs.validate_config(cfg)
    except Exception as err:  # Hydra's and the schemas' errors alike name the key
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if processes > 1:
            raise SystemExit(
                f"--processes {processes} needs {NEEDS[stage]}; this vrexp refuses it: {first}"
            ) from err
        raise SystemExit(f"{stage}: the overrides {overrides} do not compose: {first}") from err


def check_run(what: str, measured: Measured, processes: int, stage: str, log_file: Path) -> None:
    if measured.returncode == 0:
        return
    sys.stderr.write(measured.tail + "\n")
    hint = f" (--processes {processes} needs {NEEDS[stage]})" if processes > 1 else ""
    raise SystemExit(f"{what} failed with exit {measured.returncode}{hint}; log: {log_file}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--processes", type=int, nargs="+", choices=(1, 2), default=[1])
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    parser.add_argument("--epochs", type=int, default=1, help="train_checklist's task.max_epochs")
    parser.add_argument("--max-steps", type=int, default=None, help="task.max_steps instead")
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        help="an extra override for every measured run (dataset.* and debug= also for the split)",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=ROOT / "outputs" / "benchmarks" / "scale",
        help="splits (data/), run folders and logs; splits are reused by later runs",
    )
    parser.add_argument(
        "--small-model",
        action="store_true",
        help="debug=smoke's backbone dimensions (same image size, so the same inputs to cache)",
    )
    parser.add_argument("--nice", type=int, default=10, help="niceness of the measured runs")
    parser.add_argument(
        "--threads", type=int, default=None, help="OMP_NUM_THREADS of the runs (a loaded machine)"
    )
    parser.add_argument("--smoke", action="store_true", help="a tiny run: it still runs")
    parser.add_argument("--out", type=Path, default=None, help="JSON results file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    global THREADS
    THREADS = args.threads
    if args.smoke:
        args.items = [60]
        args.override = [*args.override, "debug=smoke"]
    if args.small_model:
        args.override = [*SMALL_MODEL, *args.override]
    work = args.work_dir.resolve()
    (work / "logs").mkdir(parents=True, exist_ok=True)
    import vrexp

    stamp = time.strftime("%Y%m%d-%H%M%S")
    paths = [f"paths.root_dir={work}", f"paths.data_dir={work / 'data'}"]
    budget = (
        [f"task.max_steps={args.max_steps}", "task.max_epochs=null"]
        if args.max_steps
        else [f"task.max_epochs={args.epochs}", "task.max_steps=-1"]
    )
    results: dict = {
        "vrexp": str(Path(vrexp.__file__).parent),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "runs": [],
    }

    def size(items: int) -> list[str]:
        return [f"dataset.num_prompts={math.ceil(items / RENDERS_PER_PROMPT)}"]

    def output(name: str) -> str:
        return f"paths.output_dir={work / 'runs' / stamp / name}"

    def commands(stage: str, items: int, processes: int, model: Path) -> list[list[str]]:
        base = [f"task={stage}", *paths, *size(items), *COMMON, *args.override]
        if stage == "train_checklist":
            ddp = DDP if processes > 1 else ()
            return [[*base, *budget, f"task.save_dir={model}", *ddp]]
        base = [*base, f"task.model_dir={model}"]
        if processes == 1:
            return [base]
        # the shards write into one folder, which the last of them merges
        shared = f"task.out_dir={work / 'runs' / stamp / f'annotate-{items}-p{processes}-merged'}"
        return [[*base, shared, f"task.shard={i}/{processes}"] for i in range(processes)]

    # Every command composes before anything runs: a refused override stops at once.
    split_overrides = [o for o in args.override if o.startswith(("dataset.", "debug="))]
    for items in args.items:
        compose_check(["task=make_data", *paths, *size(items), *split_overrides], 1, "make_data")
        for processes in args.processes:
            for stage in args.stages:
                for command in commands(stage, items, processes, work / "model"):
                    compose_check(command, processes, stage)

    model_dir: Path | None = None
    for items in args.items:
        split_args = ["task=make_data", *paths, *size(items), *COMMON, *split_overrides]
        log.info("rendering the split of %d items (if missing)...", items)
        split_log = work / "logs" / f"{stamp}-make_data-{items}.log"
        rendered = run_measured([*split_args, output(f"make_data-{items}")], split_log, args.nice)
        check_run("make_data", rendered, 1, "make_data", split_log)
        for processes in args.processes:
            for stage in args.stages:
                name = f"{stage}-{items}-p{processes}"
                log_file = work / "logs" / f"{stamp}-{name}.log"
                model = work / "runs" / stamp / name / "checklist_model"
                if stage == "annotate":
                    if model_dir is None:
                        model_dir = quick_model(work, stamp, paths, size(items), args)
                    model = model_dir
                load = os.getloadavg()[0]
                log.info("%s (load %.2f)...", name, load)
                measured = measure_together(
                    commands(stage, items, processes, model), name, work, stamp, log_file, args.nice
                )
                for m in measured:
                    check_run(name, m, processes, stage, log_file)
                if stage == "train_checklist" and model_dir is None:
                    model_dir = model
                seconds = max(m.seconds for m in measured)
                row = {
                    "stage": stage,
                    "items": items,
                    "processes": processes,
                    "seconds": seconds,
                    "items_per_s": items / seconds,
                    "cpu_s": sum(m.cpu_seconds for m in measured),
                    "peak_rss_mib": max(m.peak_rss for m in measured) / 2**20,
                    "tree_peak_mib": sum(m.tree_peak for m in measured) / 2**20,
                    "load_before": load,
                    "load_after": os.getloadavg()[0],
                    "log": str(log_file),
                }
                results["runs"].append(row)
                log.info("  %s", json.dumps(row))
    report(results)
    out = args.out or ROOT / "outputs" / "benchmarks" / "scale.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    log.info("results in %s", out)


def measure_together(
    commands: list[list[str]], name: str, work: Path, stamp: str, log_file: Path, nice: int
) -> list[Measured]:
    """Run the commands at once (the shards of one stage), each in its own run folder."""
    found: list[Measured | None] = [None] * len(commands)

    def one(i: int) -> None:
        suffix = f"-shard{i}" if len(commands) > 1 else ""
        run_dir = f"paths.output_dir={work / 'runs' / stamp / (name + suffix)}"
        path = log_file.with_name(log_file.stem + suffix + ".log")
        found[i] = run_measured([*commands[i], run_dir], path, nice)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(commands))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [m for m in found if m is not None]


def quick_model(work: Path, stamp: str, paths: list[str], size: list[str], args) -> Path:
    """A checklist model trained for 2 steps (unmeasured), for annotate alone."""
    model = work / "runs" / stamp / "quick_model" / "checklist_model"
    command = [
        "task=train_checklist",
        *paths,
        *size,
        *COMMON,
        *args.override,
        "task.max_steps=2",
        "task.max_epochs=null",
        f"task.save_dir={model}",
        f"paths.output_dir={model.parent}",
    ]
    log_file = work / "logs" / f"{stamp}-quick_model.log"
    check_run("quick model", run_measured(command, log_file, args.nice), 1, "", log_file)
    return model


def report(results: dict) -> None:
    """The runs as a markdown table (for docs/reliability.md)."""
    lines = [
        f"vrexp: {results['vrexp']}",
        "",
        "| stage | items | processes | peak RSS MiB | all processes MiB | s | items/s | CPU s "
        "| load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["runs"]:
        lines.append(
            f"| {r['stage']} | {r['items']:,} | {r['processes']} | {r['peak_rss_mib']:,.0f} "
            f"| {r['tree_peak_mib']:,.0f} | {r['seconds']:.0f} | {r['items_per_s']:.1f} "
            f"| {r['cpu_s']:.0f} | {r['load_before']:.1f} |"
        )
    log.info("\n".join(lines))


if __name__ == "__main__":
    main()
