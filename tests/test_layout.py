"""The package layout: the import arrows between gpusim's modules and packages run one way.

Every ``import`` in gpusim (at module level and inside functions, where lazy imports hide a cycle
from the interpreter) is read with :mod:`ast` and resolved to the gpusim module it names.  Two
graphs are checked for cycles: module to module, and package to package (``gpusim.backends``,
``gpusim.io``, ... and the top-level modules ``gpusim.engine``, ``gpusim.params``, ...; arrows
inside one package are left out of the second graph).  Importing a submodule also runs its
package's ``__init__``; that implied arrow is left out, as every package's ``__init__`` would
otherwise form a cycle with the modules it re-exports.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "gpusim"


def module_names(root: Path) -> dict[str, Path]:
    """``{dotted name: path}`` for every module under ``root`` (a package directory)."""
    out = {}
    for p in sorted(root.rglob("*.py")):
        parts = (root.name,) + p.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is a module of the tree, or None."""
    parts = name.split(".")
    for k in range(len(parts), 0, -1):
        cand = ".".join(parts[:k])
        if cand in modules:
            return cand
    return None


def import_graph(root: Path) -> dict[str, set[str]]:
    """``{module: modules it imports}`` within the tree at ``root``, all imports included."""
    modules = module_names(root)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    depth = len(package.split("."))
                    if node.level > depth:
                        raise ImportError(f"{mod}: relative import beyond gpusim (line {node.lineno})")
                    anchor = package.split(".")[: depth - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{a.name}" for a in node.names]
            for t in targets:
                r = _resolve(t, modules)
                if r is not None and r != mod:
                    graph[mod].add(r)
    return graph


def package_of(module: str) -> str:
    """``gpusim.X`` for ``gpusim.X`` and everything under it."""
    return ".".join(module.split(".")[:2])


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for m, deps in graph.items():
        pm = package_of(m)
        out.setdefault(pm, set()).update(package_of(d) for d in deps if package_of(d) != pm)
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
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
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_sees_lazy_and_relative_imports():
    """The walker finds a function-level relative import (``make_simulation`` imports the engine
    inside the function) and the package arrow it implies."""
    g = import_graph(ROOT)
    assert "gpusim.engine" in g["gpusim.backends"]
    assert "gpusim.engine" in package_graph(g)["gpusim.backends"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_between_modules():
    assert cycles(import_graph(ROOT)) == []


def test_no_import_cycle_between_packages():
    assert cycles(package_graph(import_graph(ROOT))) == []


def _readme_layout() -> str:
    text = (ROOT.parent / "README.md").read_text()
    section = text.split("## Layout", 1)[1]
    return section.split("```")[1]


def test_readme_layout_names_every_package_and_module():
    """The README's layout block names every package (``gpusim/x/``) and every module
    and header in it by its file stem, so a moved or added module shows up as a failure here."""
    import re

    block = _readme_layout()
    missing = []
    for p in sorted(ROOT.rglob("*")):
        if "__pycache__" in p.parts or p.name.startswith("__"):
            continue
        if p.is_dir() and not (p / "__init__.py").exists():
            continue  # a data folder (validation/data)
        if p.is_dir() and p.parent == ROOT and f"gpusim/{p.name}/" not in block:
            missing.append(f"gpusim/{p.name}/")
        elif p.is_dir() and p.parent != ROOT and f"{p.name}/" not in block:
            missing.append(p.relative_to(ROOT.parent).as_posix())
        elif p.suffix in (".py", ".h") and not re.search(rf"\b{re.escape(p.stem)}\b", block):
            missing.append(p.relative_to(ROOT.parent).as_posix())
    assert not missing, f"README layout does not name: {', '.join(missing)}"
    named = set(re.findall(r"^gpusim/(\w+)/", block, re.M))
    assert named <= {p.name for p in ROOT.iterdir() if p.is_dir()}, "README names a folder gpusim/ lacks"
