"""The import graph of suite/ and models/, imports inside functions counted: no circle (a module
works only because a backward import waits inside a function), and the configuration layer
(reading and checking a scenario) imports nothing of the engine that runs it."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

from tests.conftest import ROOT

CONFIGURATION = {"suite.config", "suite.config.scenario", "suite.config.params", "suite.config.search_spec",
                 "suite.config.sweep", "suite.config.safe_yaml", "suite.registry", "suite.errors"}


def modules() -> dict[str, Path]:
    found = {}
    for package in ("suite", "models"):
        for path in (ROOT / package).rglob("*.py"):
            found[".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of suite/ and models/ it imports (a package counts as its __init__);
    a module's imports of its own package and of modules inside it are left out (they run in order)."""
    known = modules()

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in known.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(parts + ([base] if base else []))
                targets.update([base, *(f"{base}.{alias.name}" for alias in node.names)])
        found = {resolve(t) for t in targets} - {None, module}
        graph[module] = {t for t in found if not module.startswith(t + ".") and t != package}
    return graph


def test_no_import_circle_among_the_modules():
    try:
        list(graphlib.TopologicalSorter(import_graph()).static_order())
    except graphlib.CycleError as exc:
        raise AssertionError(f"an import circle: {' -> '.join(exc.args[1])}") from None


def test_a_circle_is_found_where_there_is_one(tmp_path, monkeypatch):
    """The check itself: two modules importing each other inside functions make a circle."""
    for name, other in (("a", "b"), ("b", "a")):
        (tmp_path / "suite").mkdir(exist_ok=True)
        (tmp_path / "suite" / f"{name}.py").write_text(f"def f():\n    from suite.{other} import x\n")
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    try:
        list(graphlib.TopologicalSorter(import_graph()).static_order())
    except graphlib.CycleError:
        return
    raise AssertionError("a circle went unseen")


def test_the_configuration_layer_imports_nothing_of_the_engine():
    graph = import_graph()
    reached, todo = set(), ["suite.config.scenario"]
    while todo:
        module = todo.pop()
        if module not in reached:
            reached.add(module)
            todo.extend(graph[module])
    assert reached <= CONFIGURATION, sorted(reached - CONFIGURATION)
    assert "suite.config.scenario" not in graph["suite.results"] and "suite.config.scenario" not in graph["suite.records"]


def test_the_comparison_of_runs_imports_nothing_of_the_reports_drawn_from_it():
    assert not [module for module in import_graph()["suite.analysis.compare"] if module.startswith("suite.report")]
