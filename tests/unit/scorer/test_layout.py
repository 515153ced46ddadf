"""The scorer package's layout: no import circle, each module importable alone, small modules.

Guards issue 14: ``_loading`` and ``_onnx`` imported each other (``_loading`` named
``OnnxCrossEncoder``, ``_onnx`` used the loading helpers), and modules had grown past 400
lines.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import rerank_plugins
from rerank_plugins import scorer

PACKAGE = "rerank_plugins.scorer"
SCORER_DIR = Path(scorer.__file__).parent
MODULES = sorted(path.stem for path in SCORER_DIR.glob("*.py") if path.stem != "__init__")


def _imports(module: str) -> set[str]:
    """The scorer modules ``module`` imports anywhere: top level, TYPE_CHECKING or a function."""
    tree = ast.parse((SCORER_DIR / f"{module}.py").read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == PACKAGE:
                found.update(alias.name for alias in node.names if alias.name in MODULES)
            elif node.module.startswith(f"{PACKAGE}."):
                found.add(node.module.removeprefix(f"{PACKAGE}."))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(f"{PACKAGE}."):
                    found.add(alias.name.removeprefix(f"{PACKAGE}.").split(".")[0])
    return found - {module}


def test_the_scorer_modules_import_no_circle() -> None:
    """Bug: ``_loading`` and ``_onnx`` imported each other (issue 14)."""
    graph = {module: _imports(module) for module in MODULES}
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        if module in path:
            cycle = " -> ".join((*path[path.index(module) :], module))
            pytest.fail(f"import circle: {cycle}")
        if module in done:
            return
        for imported in sorted(graph.get(module, ())):
            visit(imported, (*path, module))
        done.add(module)

    for module in MODULES:
        visit(module, ())
    assert "_onnx_runtime" in graph["cross_encoder"]
    assert "_torch_backend" in graph["cross_encoder"]


def test_no_backend_imports_another() -> None:
    """The loader interface is what the backends share; ONNX Runtime and OpenVINO also share
    the export (``_onnx_files``), never each other's runtime module."""
    onnx = {"_onnx_runtime", "_onnx_export", "_onnx_cache", "_onnx_files"}
    for module in (*onnx, "_openvino_runtime"):
        assert "_torch_backend" not in _imports(module)
    assert not _imports("_torch_backend") & (onnx | {"_openvino_runtime"})
    assert "_openvino_runtime" not in set().union(*(_imports(module) for module in onnx))
    assert "_onnx_runtime" not in _imports("_openvino_runtime")
    assert not _imports("_backend") & (onnx | {"_torch_backend", "_openvino_runtime"})


@pytest.mark.parametrize(
    "order",
    [MODULES, MODULES[::-1]],
    ids=["sorted", "reversed"],
)
def test_every_scorer_module_imports_alone_and_in_any_order(order: list[str]) -> None:
    """Each module imports in a fresh interpreter on its own, and all of them in either order."""
    alone = "; ".join(
        f"subprocess.run([sys.executable, '-c', 'import {PACKAGE}.{module}'], check=True)"
        for module in order
    )
    together = "; ".join(f"import {PACKAGE}.{module}" for module in order)
    code = f"import subprocess, sys; {alone}; {together}; print('ok')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr[-2000:]


def test_no_source_module_is_over_400_lines() -> None:
    """Issue 14: one module per idea; big modules were where a newcomer got lost."""
    root = Path(rerank_plugins.__file__).parent
    sizes = {
        str(path.relative_to(root)): len(path.read_text(encoding="utf-8").splitlines())
        for path in root.rglob("*.py")
        if path.is_relative_to(SCORER_DIR)
    }
    assert {name: lines for name, lines in sizes.items() if lines > 400} == {}
