"""Rebuild a sweep's table from its folder: ``python -m vrexp.reports SWEEP_DIR [--publish [DIR]]``.

Reads ``SWEEP_DIR/multirun.yaml`` (the sweep's full config, written by Hydra) for the settings of
its ``SweepTable`` callback (``hydra.callbacks``), gathers the ``results.json`` of the jobs that
finished, lists the jobs that did not (failed, killed or never started) and writes
``NAME.md/.csv/.png`` in the sweep folder as the callback does at the end of a sweep; W&B is not
touched. ``--publish`` also copies them to ``experiments/results/`` (or DIR) with a line giving the
date, the machine and the sweep's command.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from vrexp.reports.sweep import MULTIRUN_FILE, SweepTable, sweep_command

log = logging.getLogger("vrexp.reports")


def sweep_tables(config: DictConfig) -> list[SweepTable]:
    """The ``SweepTable`` callbacks of a sweep's config, built from their settings."""
    callbacks = OmegaConf.select(config, "hydra.callbacks", default=None) or {}
    tables = []
    for node in callbacks.values():
        if str(node.get("_target_", "")).rsplit(".", 1)[-1] != "SweepTable":
            continue
        settings = OmegaConf.to_container(node, resolve=False)
        settings.pop("_target_")
        # A name or title may follow the sweep's config (`${by_media:'',_video}`, `${dataset.name}`).
        for key in ("name", "title"):
            if key in settings:
                try:
                    settings[key] = str(node[key])
                except OmegaConfBaseException as err:  # e.g. a resolver this process lacks
                    if key == "name":
                        raise ValueError(f"the table's name {settings[key]!r}: {err}") from err
                    log.debug("title left unresolved: %s", err)
        tables.append(SweepTable(**settings))
    return tables


def num_jobs(config: DictConfig) -> int | None:
    """How many jobs the sweep launches (the basic sweeper's product of swept values)."""
    try:
        params = OmegaConf.select(config, "hydra.sweeper.params", default=None) or {}
        overrides = [f"{k}={v}" for k, v in params.items()]
        overrides += list(OmegaConf.select(config, "hydra.overrides.task", default=None) or [])
        parsed = OverridesParser.create().parse_overrides(overrides)
        by_key = {o.get_key_element(): o for o in parsed}  # the command line wins over params
        sizes = [
            len(list(o.sweep_string_iterator())) for o in by_key.values() if o.is_sweep_override()
        ]
        return math.prod(sizes)
    except Exception as err:  # an unusual sweeper: count the job folders only
        log.debug("cannot count the sweep's jobs: %s", err)
        return None


def default_publish_dir() -> Path:
    from vrexp.configs.experiments import experiments_dir

    return experiments_dir() / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vrexp.reports",
        description="Rebuild the table of a finished or partly failed sweep from its folder.",
    )
    parser.add_argument("sweep_dir", type=Path, help="the sweep folder (holds multirun.yaml)")
    parser.add_argument(
        "--publish",
        nargs="?",
        const="",
        default=None,
        metavar="DIR",
        help="also copy the table, with date, machine and command, to DIR "
        "(default: experiments/results/)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s"
    )

    multirun = args.sweep_dir / MULTIRUN_FILE
    if not multirun.is_file():
        log.error("%s not found: not a Hydra sweep folder", multirun)
        return 2
    config = OmegaConf.load(multirun)
    tables = sweep_tables(config)
    if not tables:
        log.error("%s configures no vrexp.reports.SweepTable callback", multirun)
        return 2
    publish_dir = None
    if args.publish is not None:
        publish_dir = Path(args.publish) if args.publish else default_publish_dir()
    jobs = num_jobs(config)
    status = 0
    for table in tables:
        log.info("rebuilding %s from %s", table.name, args.sweep_dir)
        rows, _ = table.build(
            args.sweep_dir, command=sweep_command(config), publish_dir=publish_dir, num_jobs=jobs
        )
        if not rows:
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
