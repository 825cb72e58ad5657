"""The architecture contract: layers import only downward (import-linter, configured in
pyproject.toml), no module imports itself through others, and szflow's own modules are imported at
the top of a module, never inside a function (lazy imports are for heavy optional dependencies:
modal, wandb, mne, mamba_ssm)."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"


def _env() -> dict[str, str]:
    # Analyse this checkout's sources, whichever szflow is installed.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH", "")) if p)
    return env


def test_layers_import_only_downward():
    command = shutil.which("lint-imports")
    assert command, "lint-imports not found: install the dev extra (pip install -e '.[dev]')"
    result = subprocess.run([command, "--no-cache"], cwd=REPO, env=_env(), capture_output=True, text=True,
                            check=False, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "szflow layers KEPT" in result.stdout


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that import each other, directly or through others (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(edges[module]):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return groups


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    graph = grimp.build_graph("szflow", cache_dir=None)
    edges = {module: set(graph.find_modules_directly_imported_by(module)) for module in graph.modules}
    assert _cycles(edges) == []


def _imports_szflow(node: ast.AST) -> bool:
    if isinstance(node, ast.ImportFrom):
        return bool(node.level) or (node.module or "").split(".")[0] == "szflow"
    return isinstance(node, ast.Import) and any(a.name.split(".")[0] == "szflow" for a in node.names)


def _function_local_szflow_imports(path: Path) -> list[int]:
    functions = (node for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                 if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)))
    return sorted({inner.lineno for node in functions for inner in ast.walk(node) if _imports_szflow(inner)})


def test_import_finder_sees_imports_inside_functions(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import szflow\n\ndef f():\n    from szflow import layout\n    import json\n\n"
                      "class C:\n    def g(self):\n        import szflow.config\n")
    assert _function_local_szflow_imports(module) == [4, 9]


def test_szflow_modules_are_imported_at_the_top():
    found = {path.relative_to(REPO).as_posix(): lines
             for path in sorted((SRC / "szflow").rglob("*.py"))
             if (lines := _function_local_szflow_imports(path))}
    assert found == {}, f"{sum(map(len, found.values()))} function-local imports of szflow modules: {found}"
