"""The layering rule of CONTRIBUTING.md, checked on the source: imports flow one way.

tasks -> modules / reports -> library layers (reward, generators, backbones, metrics, preference,
data, tracking) -> primitives (checklist, media, configs). A task module imports no other task
module, except that a chain may call stage entry points; nothing below the tasks imports them. The
top-level primitive modules (resources, atomic, trust, ranks) import no other vrexp module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "vrexp"
CHAINS = {"pipeline", "optimize_generator"}
# package -> the vrexp packages it may import (besides itself)
ALLOWED = {
    "configs": set(),
    "checklist": {"configs"},
    "media": {"configs"},
    "preference": {"configs"},
    "metrics": {"configs"},
    "data": {"configs", "checklist", "media", "preference"},
    "tracking": {"configs"},
    "backbones": {"configs", "checklist", "media", "data"},
    "reward": {"configs", "checklist", "media", "data", "backbones", "metrics"},
    "generators": {"configs", "checklist", "media", "data", "backbones", "reward"},
    "reports": {"configs", "checklist", "media", "data", "reward", "metrics"},
    "modules": {
        "configs",
        "checklist",
        "media",
        "data",
        "backbones",
        "reward",
        "generators",
        "metrics",
        "preference",
        "tracking",
    },
}


def vrexp_imports(path: Path) -> set[str]:
    """Dotted vrexp modules imported anywhere in ``path`` (function-level imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found |= {n for n in names if n == "vrexp" or n.startswith("vrexp.")}
    return found


def modules_of(package: str) -> list[Path]:
    return sorted((PACKAGE / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_library_layers_import_only_the_layers_below(package):
    for path in modules_of(package):
        for name in vrexp_imports(path):
            parts = name.split(".")
            if len(parts) < 2 or parts[1] == package or not (PACKAGE / parts[1]).is_dir():
                continue
            assert parts[1] in ALLOWED[package], f"{path.relative_to(PACKAGE)} imports {name}"


def test_a_task_imports_no_other_task_except_chains_calling_stages():
    tasks = {p.stem for p in (PACKAGE / "tasks").glob("*.py") if p.stem != "__init__"}
    for path in (PACKAGE / "tasks").glob("*.py"):
        if path.stem == "__init__":
            continue
        imported = {
            n.split(".")[2] for n in vrexp_imports(path) if n.startswith("vrexp.tasks.")
        } & tasks
        if path.stem in CHAINS:
            # a chain takes a stage's entry point (the function named after it) or its layout
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    "vrexp.tasks."
                ):
                    stage = node.module.split(".")[2]
                    names = {a.name for a in node.names}
                    assert names <= {stage, "layout"}, f"{path.name} imports {names} from {stage}"
        else:
            assert not imported, f"task {path.stem} imports task modules {sorted(imported)}"


def test_the_reward_does_not_import_the_lightning_modules():
    for path in modules_of("reward"):
        assert not any(n.startswith("vrexp.modules") for n in vrexp_imports(path)), path.name


@pytest.mark.parametrize("module", ["resources", "atomic", "trust", "ranks"])
def test_top_level_primitives_import_no_other_vrexp_module(module):
    imported = {n for n in vrexp_imports(PACKAGE / f"{module}.py") if n != "vrexp"}
    assert not imported, f"vrexp/{module}.py imports {sorted(imported)}"


def test_the_rule_catches_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from vrexp.modules.weights import fit_sgd\n")
    assert "vrexp.modules.weights" in vrexp_imports(bad)
