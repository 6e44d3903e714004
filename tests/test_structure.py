"""The layout holds: each module says its job in one docstring line, none is over 400 lines, the
imports form no circle and point one way (cli -> env -> snapshots -> backends -> ns), the code is
ruff-formatted and mypy-clean, and every import inside a function says what it keeps off which path."""

from __future__ import annotations

import ast
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest
from conftest import missing

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "venvroot"
MAX_LINES = 400
# Each layer of venvroot may import only itself and the layers named here (the lowest at the end).
LOWER = {
    "venvroot.cli": (
        "venvroot.env",
        "venvroot.snapshots",
        "venvroot.backends",
        "venvroot.ns",
        "venvroot.shims",
    ),
    "venvroot.env": ("venvroot.snapshots", "venvroot.backends", "venvroot.shims", "venvroot.activators"),
    "venvroot.snapshots": ("venvroot.backends", "venvroot.shims.marker"),
    "venvroot.backends": ("venvroot.ns", "venvroot.shims.writer", "venvroot.shims.marker"),
    "venvroot.ns": (),
    "venvroot.activators": (),
    "venvroot.shims": (),
}
EVERYWHERE = ("venvroot.errors", "venvroot.version", "venvroot.util")


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every venvroot module ``name`` imports: at the top, in functions and under TYPE_CHECKING."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1] + [node.module or ""]).strip(".")
            base = base if node.level else node.module or ""
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def test_every_module_says_its_job_in_its_first_docstring_line() -> None:
    for name, path in modules().items():
        doc = ast.get_docstring(ast.parse(path.read_text()), clean=False)
        assert doc, f"{name} has no docstring"
        first = doc.split("\n")[0].strip()
        assert first and len(first) > 15, f"{name}: the first docstring line says no job: {first!r}"


def test_no_module_is_over_400_lines() -> None:
    sizes = {name: len(path.read_text().splitlines()) for name, path in modules().items()}
    assert {n: s for n, s in sizes.items() if s > MAX_LINES} == {}


def test_the_imports_form_no_circle() -> None:
    known = modules()
    graph = {name: imports(name, path, known) for name, path in known.items()}
    done: set[str] = set()

    def visit(name: str, trail: list[str]) -> None:
        if name in trail:
            pytest.fail("import circle: " + " -> ".join([*trail[trail.index(name) :], name]))
        if name in done:
            return
        for target in sorted(graph[name]):
            visit(target, [*trail, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])


def test_the_imports_point_one_way() -> None:
    known = modules()
    wrong = []
    for name, path in known.items():
        layer = next((lay for lay in sorted(LOWER, key=len, reverse=True) if name.startswith(lay)), None)
        if layer is None:
            continue
        allowed = (layer, *LOWER[layer], *EVERYWHERE)
        for target in imports(name, path, known):
            if target in ("venvroot", *(p.rpartition(".")[0] for p in allowed)):
                continue  # a package's own __init__ on the way down
            if not any(target == a or target.startswith(a + ".") for a in allowed):
                wrong.append(f"{name} -> {target}")
    assert wrong == []


def uncommented_local_imports(source: str) -> list[int]:
    """The lines of the imports inside functions that have no comment saying why: none on the
    import itself, none on the line above it or above the first of its run of imports."""
    lines = source.splitlines()
    comments = {
        tok.start[0]
        for tok in tokenize.generate_tokens(iter(source.splitlines(keepends=True)).__next__)
        if tok.type == tokenize.COMMENT
    }
    tree = ast.parse(source)
    ending_at = {n.end_lineno: n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))}
    local = {
        n.lineno: n
        for fn in ast.walk(tree)
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
        for n in ast.walk(fn)
        if isinstance(n, (ast.Import, ast.ImportFrom))
    }
    bare = []
    for line, node in sorted(local.items()):
        cur: ast.stmt | None = node
        while cur is not None:
            if comments & set(range(cur.lineno - 1, (cur.end_lineno or cur.lineno) + 1)):
                break
            above = cur.lineno - 1
            while above > 0 and not lines[above - 1].strip():
                above -= 1  # the blank line between two groups of a run of imports
            prev = ending_at.get(above)
            cur = prev if prev is not None and prev.col_offset == cur.col_offset else None
        else:
            bare.append(line)
    return bare


def test_the_check_of_local_imports_finds_a_bare_one() -> None:
    source = (
        "def f():\n    # json: not on the hot path\n    import json\n\n    import re\n"
        "    x = 1\n    import os\n    import sys  # sys: always loaded\n"
    )
    assert uncommented_local_imports(source) == [7]


def test_every_function_local_import_says_what_it_keeps_off_which_path() -> None:
    bare = []
    for path in modules().values():
        bare += [f"{path.relative_to(ROOT)}:{n}" for n in uncommented_local_imports(path.read_text())]
    # Move the import to the top, or say on its line (or above) what heavy module it keeps off which path.
    assert bare == []


def _tool(module: str, *args: str) -> subprocess.CompletedProcess:
    probe = subprocess.run([sys.executable, "-m", module, "--version"], capture_output=True)
    if probe.returncode != 0:
        missing(f"{module} is not installed (it is in the test extras)")
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True)


def test_the_code_is_ruff_formatted() -> None:
    done = _tool("ruff", "format", "--check", "--no-cache", "venvroot", "tests", "bench")
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_finds_nothing() -> None:
    done = _tool("mypy", "--no-incremental")
    assert done.returncode == 0, done.stdout + done.stderr
