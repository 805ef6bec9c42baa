"""geocd's modules import each other without a cycle (``TYPE_CHECKING`` and function-level imports included)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]


def module_files() -> dict[str, Path]:
    """Every module of the installed package by dotted name: ``geocd/`` and ``cli/`` (installed as ``geocd.cli``)."""
    found = {}
    for folder, prefix in (("geocd", ()), ("cli", ("geocd",))):
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if folder == "geocd" and parts[1] == "cli":  # the symlink to cli/ in a worktree
                continue
            parts = prefix + (parts[:-1] if parts[-1] == "__init__" else parts)
            found[".".join(parts)] = path
    return found


def import_graph() -> nx.DiGraph:
    """An edge from each module to each geocd module it imports anywhere in its source (a name imported
    from a package is an edge to the package, unless the name is a module of it)."""
    modules = module_files()
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = ".".join([*package.split(".")[: len(package.split(".")) + 1 - node.level], *filter(None, [node.module])]
                                ) if node.level else node.module
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph.add_edge(name, target)
    return graph


def test_no_import_cycle() -> None:
    assert sorted(nx.simple_cycles(import_graph())) == []


def test_options_and_report_import_nothing_from_inference() -> None:
    """The options and the report are below the inference engine that uses them."""
    graph = import_graph()
    for low in ("geocd.options", "geocd.report"):
        assert [m for m in graph.successors(low) if m.startswith("geocd.inference")] == []


def test_the_graph_sees_type_checking_relative_and_function_imports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cycle closed by a ``TYPE_CHECKING`` import, a relative import or one inside a function is found."""
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "cli").mkdir()
    package = tmp_path / "geocd"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from geocd.sub.b import B\n")
    (package / "sub" / "b.py").write_text("def f():\n    from ..c import C\n")
    (package / "c.py").write_text("from geocd import a\n")
    assert [set(cycle) for cycle in nx.simple_cycles(import_graph())] == [{"geocd.a", "geocd.sub.b", "geocd.c"}]
