"""Import layering: no import cycle between Vigil's modules, nor between its packages.

Cycles are what forced lazy ``__getattr__`` imports and "import this one first" rules before.
Every module's imports are read statically (``ast``), so a cycle is found before it bites at
import time, and the failure names it. Two graphs:

* modules, with the imports that run when a module is imported (module level, including
  ``if TYPE_CHECKING:`` blocks, since a type-only cycle is still a tangle);
* packages (``vigil/<name>/`` or ``vigil/<name>.py``), with every import, lazy ones inside
  functions included: a package may use only packages below it.

The checker is first shown to catch crafted cycles, so a pass on the real package means
something.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import vigil


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    lazy: bool  # inside a function body: runs on the first call, not at import


def modules(root: Path, package: str) -> dict[str, Path]:
    """Dotted name → file of every module of ``package`` found in ``root``."""
    found: dict[str, Path] = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _statements(tree: ast.AST, lazy: bool = False) -> Iterator[tuple[ast.stmt, bool]]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, lazy
        inside = lazy or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        yield from _statements(node, inside)


def imports(name: str, path: Path, known: dict[str, Path]) -> list[Import]:
    """What module ``name`` imports among ``known``, with the packages that run first."""
    is_package = path.name == "__init__.py"
    found: list[Import] = []
    for node, lazy in _statements(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")[: len(name.split(".")) - node.level + is_package]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        for target in targets:
            parts = target.split(".")
            # ``import a.b.c`` runs a and a.b first; a module inside a.b found them started.
            for depth in range(1, len(parts) + 1):
                step = ".".join(parts[:depth])
                if step in known and step != name and not name.startswith(step + "."):
                    found.append(Import(name, step, lazy))
    return found


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``edges`` as ``[a, b, …, a]``, or None (depth-first, colours)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt, path)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (cycle := visit(start, [])):
            return cycle
    return None


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def graphs(root: Path, package: str) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(module graph of import-time imports, package graph of all imports)."""
    known = modules(root, package)
    by_module: dict[str, set[str]] = {}
    by_package: dict[str, set[str]] = {}
    for name, path in known.items():
        for imp in imports(name, path, known):
            if not imp.lazy:
                by_module.setdefault(name, set()).add(imp.target)
            src, dst = package_of(name), package_of(imp.target)
            if src != dst and package not in (src, dst):
                by_package.setdefault(src, set()).add(dst)
    return by_module, by_package


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


BASE = {"pkg/__init__.py": "", "pkg/low/__init__.py": "", "pkg/high/__init__.py": ""}


@pytest.mark.parametrize(
    ("files", "modules_cycle", "packages_cycle"),
    [
        pytest.param(
            {"pkg/low/a.py": "from pkg.high import b\n", "pkg/high/b.py": "import pkg.low.a\n"},
            ["pkg.high.b", "pkg.low.a", "pkg.high.b"],
            ["high", "low", "high"],
            id="two modules",
        ),
        pytest.param(
            {
                "pkg/low/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                "    from pkg.high.b import B\n",
                "pkg/high/b.py": "from pkg.low.a import A\n",
            },
            ["pkg.high.b", "pkg.low.a", "pkg.high.b"],
            ["high", "low", "high"],
            id="type-only",
        ),
        pytest.param(
            {
                "pkg/low/__init__.py": "from pkg.low.a import A\n",
                "pkg/low/a.py": "from pkg.high.b import B\n",
                "pkg/high/b.py": "from pkg.low.c import C\n",
                "pkg/low/c.py": "",
            },
            ["pkg.high.b", "pkg.low", "pkg.low.a", "pkg.high.b"],
            ["high", "low", "high"],
            id="through a package __init__",
        ),
        pytest.param(
            {
                "pkg/low/a.py": "def f():\n    from pkg.high import b\n",
                "pkg/high/b.py": "from . import c\nfrom pkg.low.a import f\n",
                "pkg/high/c.py": "",
            },
            None,
            ["high", "low", "high"],
            id="lazy: packages only",
        ),
        pytest.param(
            {
                "pkg/low/a.py": "from pkg.low import b\n",
                "pkg/low/b.py": "x = 1\n",
                "pkg/high/c.py": "from ..low.a import b\n",
            },
            None,
            None,
            id="no cycle, relative imports",
        ),
    ],
)
def test_checker_finds_crafted_cycles(
    tmp_path: Path,
    files: dict[str, str],
    modules_cycle: list[str] | None,
    packages_cycle: list[str] | None,
) -> None:
    by_module, by_package = graphs(_write(tmp_path, {**BASE, **files}), "pkg")
    assert find_cycle(by_module) == modules_cycle
    assert find_cycle(by_package) == packages_cycle


def test_relative_imports_resolve_like_python(tmp_path: Path) -> None:
    root = _write(tmp_path, {**BASE, "pkg/high/c.py": "from ..low.a import x\nfrom . import d\n",
                             "pkg/high/d.py": "", "pkg/low/a.py": ""})  # fmt: skip
    known = modules(root, "pkg")
    targets = {i.target for i in imports("pkg.high.c", known["pkg.high.c"], known)}
    assert targets == {"pkg.low", "pkg.low.a", "pkg.high.d"}


REAL_ROOT = Path(vigil.__file__).resolve().parent.parent


def test_no_import_cycle_between_modules() -> None:
    by_module, _ = graphs(REAL_ROOT, "vigil")
    assert len(by_module) > 50, "the checker read the package"
    cycle = find_cycle(by_module)
    assert cycle is None, (
        "import cycle " + " -> ".join(cycle or []) + ": move what both need to the lower module"
    )


def test_no_import_cycle_between_packages() -> None:
    _, by_package = graphs(REAL_ROOT, "vigil")
    assert {"config", "events", "alerts", "api", "runtime"} <= set(by_package)
    cycle = find_cycle(by_package)
    assert cycle is None, (
        "packages import each other: "
        + " -> ".join(cycle or [])
        + "; move the shared type or function down to the package it belongs to"
    )


def test_alerts_and_config_import_first_and_without_paho() -> None:
    """Each in a fresh interpreter: the orders that used to need the lazy workaround."""
    for first in ("vigil.config.models", "vigil.alerts", "vigil.events"):
        code = f"import sys, {first}; assert 'paho' not in sys.modules, 'paho-mqtt loaded'"
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=120, check=False)  # fmt: skip
        assert done.returncode == 0, f"importing {first} first: {done.stderr}"
