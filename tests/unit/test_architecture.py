"""The shape of the house (ARCHITECTURE.md), checked on the source itself.

Dependency direction: ``starters → operations → workflows (contracts) ← activities``;
``activities → operations`` where an activity acts on another workflow;
``workers`` wires workflows and activities. Nothing imports ``starters``;
``workflows/policy`` imports nothing from Temporal; no import circles; small modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("workflows", "activities", "workers", "starters", "operations")
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported project module, inside a function?) for every import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    local: set[int] = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            local.update(id(n) for n in ast.walk(fn) if isinstance(n, (ast.Import, ast.ImportFrom)))
    out: list[tuple[str, bool]] = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        for target in targets:
            if target.split(".")[0] not in PACKAGES:
                continue
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target:
                out.append((target, id(node) in local))
    return out


GRAPH = {name: {t for t, _ in _imports(path) if t != name} for name, path in MODULES.items()}


def _cycles() -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in GRAPH:
        if v not in index:
            visit(v)
    return found


def test_no_import_circles() -> None:
    assert _cycles() == []


@pytest.mark.parametrize("importer", ["workflows", "activities", "operations", "workers"])
def test_nothing_imports_starters(importer: str) -> None:
    offenders = [
        (m, t)
        for m, targets in GRAPH.items()
        if m.split(".")[0] == importer
        for t in targets
        if t.split(".")[0] == "starters"
    ]
    assert offenders == []


def test_workflows_import_activities_only_as_references() -> None:
    """Contracts, policy and operations never import activities; flows reference them (passed through)."""
    offenders = [
        (m, t)
        for m, targets in GRAPH.items()
        if m.startswith("operations") or m.startswith("workflows.policy") or m.endswith(".models")
        for t in targets
        if t.startswith("activities")
    ]
    assert offenders == []


def test_operations_call_workflows_by_contract() -> None:
    """operations/ names workflows and models, never the workflow classes (``workflows.<flow>.workflow``)."""
    offenders = [
        (m, t)
        for m, targets in GRAPH.items()
        if m.startswith("operations")
        for t in targets
        if t.endswith(".workflow") or t.endswith(".lock")
    ]
    assert offenders == []


def test_policy_has_no_temporal_and_no_io() -> None:
    banned = ("temporalio", "httpx", "aiohttp", "slack_sdk", "sendgrid", "socket", "subprocess")
    for name, path in MODULES.items():
        if not name.startswith("workflows.policy"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            mods = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not any(m.split(".")[0] in banned for m in mods), (name, mods)


def test_no_function_local_project_imports() -> None:
    """A function-local import of the project is how cycles hide; there are none."""
    offenders = [(name, t) for name, path in MODULES.items() for t, local in _imports(path) if local]
    assert offenders == []


def test_modules_are_small() -> None:
    sizes = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in MODULES.items()}
    assert {n: s for n, s in sizes.items() if s > MAX_MODULE_LINES} == {}


def test_functions_are_short() -> None:
    long: dict[str, int] = {}
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long[f"{name}.{node.name}"] = length
    assert long == {}
