"""Static checks of the code: ruff and mypy are clean, the layer has no import circle, and tests and
the bench use only public names of the project's modules."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.template

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "layers/recsys/recsys"
PROJECT = ("recsys", "training", "devstack", "functions", "scripts", "bench", "tests")


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing() -> None:
    result = _run(str(ROOT / ".venv/bin/ruff"), "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_nothing() -> None:
    # the files and settings are pyproject.toml's: the layer, training, the dev stack, the handlers
    result = _run(str(ROOT / ".venv/bin/mypy"))
    assert result.returncode == 0, result.stdout + result.stderr


def _imports(path: Path) -> set[str]:
    """The `recsys` modules a module of the layer imports, wherever in the module the import is."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("recsys"):
            names = [f"{node.module}.{a.name}" for a in node.names] if node.module == "recsys" else [node.module]
            found.update(n for n in names if (LAYER / f"{n.split('.', 1)[1]}.py").exists())
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("recsys."))
    return found


def test_the_layer_has_no_import_circle() -> None:
    graph = {f"recsys.{p.stem}": _imports(p) for p in LAYER.glob("*.py") if p.stem != "__init__"}
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join((*path, module))
        if module in done:
            return
        for imported in graph.get(module, ()):
            visit(imported, (*path, module))
        done.add(module)

    for module in graph:
        visit(module, ())
    assert "recsys.service" not in graph["recsys.artifact"]  # the circle there was


def test_tests_and_bench_use_only_public_names() -> None:
    private = []
    for path in sorted([*ROOT.glob("tests/**/*.py"), *ROOT.glob("bench/*.py")]):
        tree = ast.parse(path.read_text())
        modules = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PROJECT:
                private += [f"{path.relative_to(ROOT)}: {node.module}.{a.name}" for a in node.names
                            if a.name.startswith("_")]  # fmt: skip
                modules.update(a.asname or a.name for a in node.names)
            elif isinstance(node, ast.Import):
                modules.update(a.asname or a.name for a in node.names if a.name.split(".")[0] in PROJECT)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
                    and node.attr.startswith("_") and not node.attr.startswith("__")):  # fmt: skip
                private.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value.id}.{node.attr}")
    assert not private, private


def test_everything_train_functions_image_copies_is_in_a_fresh_clone() -> None:
    # `sam build` of TrainFunction's image runs on a clone: each COPY source must be a tracked file,
    # or a folder holding one (a folder the build makes, or .gitignore hides, fails there)
    tracked = _run("git", "ls-files").stdout.splitlines()
    sources = [line.split()[1:-1] for line in (ROOT / "functions/train/Dockerfile").read_text().splitlines()
               if line.startswith("COPY ")]  # fmt: skip
    assert sources
    for source in (s.rstrip("/") for group in sources for s in group):
        assert any(path == source or path.startswith(source + "/") for path in tracked), source
