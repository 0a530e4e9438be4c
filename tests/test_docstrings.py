"""One docstring convention in gpusim: numpydoc.

Every docstring (module, class, function; read with :mod:`ast`) is checked for Google-style
section headers (``Args:``, ``Returns:``, ``Raises:`` ... alone on a line) and for numpydoc
section headers whose underline is of the wrong length, and for Sphinx field lists
(``:param x:``, ``:returns:``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "gpusim"

SECTIONS = ("Args", "Arguments", "Parameters", "Other Parameters", "Keyword Args", "Keyword Arguments",
            "Returns", "Yields", "Receives", "Raises", "Warns", "Warnings", "Attributes", "Methods",
            "Example", "Examples", "Note", "Notes", "References", "See Also", "Todo")
GOOGLE = re.compile(rf"^\s*({'|'.join(SECTIONS)}):\s*$")
NUMPY = re.compile(rf"^\s*({'|'.join(SECTIONS)})\s*$")
SPHINX = re.compile(r"^\s*:(param|parameter|arg|type|returns?|rtype|raises?)\b")


def docstrings(root: Path):
    """``(path, line, docstring)`` for every module, class and function docstring under root."""
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node, clean=True)
                if doc:
                    yield path, getattr(node, "lineno", 1), doc


def problems(root: Path) -> list[str]:
    out = []
    for path, line, doc in docstrings(root):
        where = f"{path.relative_to(root.parent)}:{line}"
        lines = doc.splitlines()
        for i, ln in enumerate(lines):
            if GOOGLE.match(ln):
                out.append(f"{where}: Google-style section {ln.strip()!r} (use numpydoc)")
            elif SPHINX.match(ln):
                out.append(f"{where}: Sphinx field {ln.strip()!r} (use numpydoc)")
            elif NUMPY.match(ln) and i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"}:
                if len(lines[i + 1].strip()) != len(ln.strip()):
                    out.append(f"{where}: underline of {ln.strip()!r} is not its length")
    return out


def test_the_check_finds_a_google_section(tmp_path):
    pkg = tmp_path / "gpusim"
    pkg.mkdir()
    (pkg / "m.py").write_text('def f(a):\n    """F.\n\n    Args:\n        a: x.\n    """\n'
                              'def g(a):\n    """G.\n\n    Returns\n    ---\n    int\n    """\n'
                              'def h(a):\n    """H.\n\n    :param a: x.\n    """\n')
    found = problems(pkg)
    assert len(found) == 3, found
    assert "'Args:'" in found[0] and "underline" in found[1] and "Sphinx" in found[2]


def test_docstrings_are_numpydoc():
    found = problems(ROOT)
    assert not found, "\n".join(found)
