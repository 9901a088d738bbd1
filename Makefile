# Contributor shortcuts. Run inside the project's virtualenv (`make install` creates none: it
# installs into the active Python, as the README's test command does after `python3 -m venv`).
PYTHON ?= python

.PHONY: install test test-slow lint format bench-smoke docs-images

install:
	$(PYTHON) -m pip install -e ".[test]"

test:
	$(PYTHON) -m pytest

test-slow:
	$(PYTHON) -m pytest -m slow

lint:
	$(PYTHON) -m ruff format --check .
	$(PYTHON) -m ruff check .

format:
	$(PYTHON) -m ruff format .
	$(PYTHON) -m ruff check --fix .

# Every benchmark at a tiny size (seconds each, about a minute in all on 2 cores): they still run
# end to end, the numbers mean nothing. Without flags the benchmarks run their reported sizes.
# PYTHONPATH: this checkout's vrexp, whichever tree the environment has installed.
BENCH = PYTHONPATH=$(CURDIR) $(PYTHON)
bench-smoke:
	$(BENCH) benchmarks/checklist_answering.py --smoke
	$(BENCH) benchmarks/dpo_step.py --batch 1 --steps 1 --warmup 1 --variants sft
	$(BENCH) benchmarks/fit_weights.py --pairs 500 --max-epochs 3
	$(BENCH) benchmarks/select_pairs.py --prompts 200 --loop-prompts 20
	$(BENCH) benchmarks/synthworld_render.py --images 20 --videos 2
	$(BENCH) benchmarks/media_decode.py --smoke
	$(BENCH) benchmarks/media_memory.py --smoke
	$(BENCH) benchmarks/benchmark_io.py --smoke
	$(BENCH) benchmarks/scale.py --smoke

# docs/images/score_report.png, the score report in headless Chromium (needs chromium installed).
docs-images:
	$(BENCH) docs/images/make_score_report_screenshot.py
