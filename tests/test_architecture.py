"""Imports go one way (docs/architecture.md): the layers contract in pyproject.toml holds, and no two top-level
packages import each other, directly or around a loop. A lower package that must let a higher one act receives
a hook (wired in temoin.platform or temoin.web) instead of importing it."""

from __future__ import annotations

from pathlib import Path

import grimp
import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]


def test_the_layers_contract_holds(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    report = capsys.readouterr().out
    assert code == 0, f"an import goes the wrong way (see docs/architecture.md):\n{report}"


def _package_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one package (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_two_packages_import_each_other() -> None:
    graph = grimp.build_graph("temoin", cache_dir=None)
    top = lambda module: ".".join(module.split(".")[:2])  # noqa: E731 - a one-line helper
    edges: dict[str, set[str]] = {}
    for importer in graph.modules:
        for imported in graph.find_modules_directly_imported_by(importer):
            if top(imported) != top(importer) and imported != "temoin":
                edges.setdefault(top(importer), set()).add(top(imported))
    cycles = _package_cycles(edges)
    lines = [
        f"{' <-> '.join(c)}: " + "; ".join(f"{a} -> {b}" for a in c for b in sorted(edges[a] & set(c))) for c in cycles
    ]
    assert not cycles, "packages importing each other (move the code down or give the lower one a hook):\n" + "\n".join(
        lines
    )


def test_the_cycle_check_sees_a_cycle() -> None:
    assert _package_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
