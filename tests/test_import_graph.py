"""The package's modules import each other without a cycle.

Every ``import`` / ``from ... import`` of ``clusterlight.*`` counts, at module level or inside a
function (a function-local import only hides a cycle until the function runs). A package is the
module of its ``__init__.py``: ``from clusterlight.losses import X`` is an edge to
``clusterlight.losses``, so a submodule of ``losses`` importing from its own package's
``__init__`` while the ``__init__`` imports it is a cycle. Loading ``clusterlight.a.b`` also runs
``clusterlight/__init__.py`` and ``clusterlight/a/__init__.py`` first, but those implicit parent
imports are not edges: otherwise a package ``__init__`` re-exporting its submodules, the usual
pattern, would close a loop with every submodule that imports a sibling.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

from helpers import ROOT


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Every module under ``root / package`` by dotted name (a package by its ``__init__.py``)."""
    modules = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if "__pycache__" in parts:
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def import_graph(root: Path, package: str, missing: list[str] | None = None) -> dict[str, dict[str, str]]:
    """module -> {imported module: "file:line" of the first such import}, within ``package``.
    Imports of ``package.*`` names that are no module go to ``missing``."""
    modules = module_names(root, package)
    graph: dict[str, dict[str, str]] = {m: {} for m in modules}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: from its own package (a package's __init__ is its own package)
                    base = module.split(".")
                    base = base[: len(base) - node.level + (1 if is_package else 0)]
                    origin = ".".join(base + ([node.module] if node.module else []))
                else:
                    origin = node.module or ""
                # ``from a.b import c``: the module a.b.c if there is one, else a.b
                targets = [
                    f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in modules else origin
                    for alias in node.names
                ]
            for target in targets:
                where = f"{path.relative_to(root)}:{node.lineno}"
                if target in modules and target != module:
                    graph[module].setdefault(target, where)
                elif target.split(".")[0] == package and target not in modules and missing is not None:
                    missing.append(f"{where}: {target}")
    return graph


def find_cycle(graph: dict[str, dict[str, str]]) -> list[str] | None:
    try:
        graphlib.TopologicalSorter({m: set(deps) for m, deps in graph.items()}).prepare()
    except graphlib.CycleError as e:
        return list(reversed(e.args[1]))  # graphlib lists it against the edges' direction
    return None


def describe(cycle: list[str], graph: dict[str, dict[str, str]]) -> str:
    return "\n".join(f"  {a} imports {b} ({graph[a][b]})" for a, b in zip(cycle, cycle[1:]))


def test_clusterlight_import_graph_has_no_cycle():
    graph = import_graph(ROOT, "clusterlight")
    assert len(graph) > 20 and "clusterlight.cli" in graph
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle in clusterlight:\n" + describe(cycle, graph)


def test_modules_import_nothing_from_inference():
    """``clusterlight.modules`` (the LightningModules) sit below ``clusterlight.inference``, which loads and
    runs them: no module of the one imports a module of the other."""
    graph = import_graph(ROOT, "clusterlight")
    upward = [
        f"  {module} imports {target} ({where})"
        for module, deps in graph.items()
        if module == "clusterlight.modules" or module.startswith("clusterlight.modules.")
        for target, where in deps.items()
        if target == "clusterlight.inference" or target.startswith("clusterlight.inference.")
    ]
    assert not upward, "clusterlight.modules imports clusterlight.inference:\n" + "\n".join(upward)


def test_every_clusterlight_import_names_a_module():
    """So that no edge of the graph above is lost to a misspelt or moved module."""
    missing: list[str] = []
    import_graph(ROOT, "clusterlight", missing)
    assert not missing, "imports of modules that do not exist:\n" + "\n".join(missing)


def _write_package(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_checker_finds_a_function_local_cycle_and_accepts_init_reexports(tmp_path):
    _write_package(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.sub import A\nfrom pkg import tool\n",
            "pkg/sub/__init__.py": "from pkg.sub.a import A\n",
            "pkg/sub/a.py": "from pkg.sub.b import B\nA = 1\n",
            "pkg/sub/b.py": "import pkg.tool\nB = 2\n",
            "pkg/tool.py": "def f():\n    from . import cli\n",
            "pkg/cli.py": "import os\n",
        },
    )
    missing: list[str] = []
    graph = import_graph(tmp_path, "pkg", missing)
    assert not missing
    assert graph["pkg"] == {"pkg.sub": "pkg/__init__.py:1", "pkg.tool": "pkg/__init__.py:2"}
    assert set(graph["pkg.sub.b"]) == {"pkg.tool"} and set(graph["pkg.tool"]) == {"pkg.cli"}
    assert find_cycle(graph) is None  # __init__ files importing their own submodules are fine

    (tmp_path / "pkg/cli.py").write_text("def main():\n    from pkg.sub.a import A\n")
    graph = import_graph(tmp_path, "pkg")
    cycle = find_cycle(graph)
    assert cycle is not None and cycle[0] == cycle[-1]
    assert set(cycle) == {"pkg.cli", "pkg.sub.a", "pkg.sub.b", "pkg.tool"}
    assert "pkg.cli imports pkg.sub.a (pkg/cli.py:2)" in describe(cycle, graph)

    (tmp_path / "pkg/cli.py").write_text("from pkg.sub import A\n")  # the package __init__ is a module too
    assert set(find_cycle(import_graph(tmp_path, "pkg"))) == {
        "pkg.cli",
        "pkg.sub",
        "pkg.sub.a",
        "pkg.sub.b",
        "pkg.tool",
    }

    (tmp_path / "pkg/cli.py").write_text("import pkg.gone\nfrom pkg.sub.old import A\n")
    import_graph(tmp_path, "pkg", missing)
    assert missing == ["pkg/cli.py:1: pkg.gone", "pkg/cli.py:2: pkg.sub.old"]
