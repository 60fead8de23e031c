"""Camera worker processes import only what they use: not the web app, not the store.

Every worker process is a fresh ``spawn`` interpreter that imports ``vigil.runtime.procs`` (and
through it ``vigil.runtime.worker``); anything those modules pull in is paid in memory and start
time once per process. The probe runs in a fresh interpreter, because this test process has
long since imported FastAPI for other tests; it is first shown to see a module that does load
the web app, so its silence below means something.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import vigil.runtime

#: What a worker process never needs: it analyses cameras; the main process serves HTTP and
#: owns the database (events reach the store through the main process's sink).
WEB_AND_STORE = ("fastapi", "starlette", "sqlalchemy", "uvicorn")


def loaded_after(module: str) -> set[str]:
    """The top-level packages of ``WEB_AND_STORE`` in ``sys.modules`` after importing ``module``
    in a fresh interpreter."""
    probe = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         env=dict(os.environ), timeout=120, check=True)  # fmt: skip
    return set(json.loads(out.stdout.strip().splitlines()[-1])) & set(WEB_AND_STORE)


def test_probe_sees_the_web_app() -> None:
    pytest.importorskip("fastapi", reason="the server extra is not installed")
    assert {"fastapi", "starlette"} <= loaded_after("vigil.api")


@pytest.mark.parametrize("module", ["vigil.runtime.worker", "vigil.runtime.procs",
                                    "vigil.runtime.messages", "vigil.runtime.view"])  # fmt: skip
def test_worker_modules_do_not_load_web_or_store(module: str) -> None:
    assert loaded_after(module) == set()


def imported_modules(source: str) -> set[str]:
    """Every module an ``import`` statement of ``source`` names (also inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_the_scan_sees_imports_of_the_api() -> None:
    crafted = "def f():\n    from vigil.api.runtime import StaticRuntime\nfrom vigil import api\n"
    assert {"vigil.api.runtime", "vigil.api"} <= imported_modules(crafted)


def test_the_runtime_does_not_import_the_api() -> None:
    """The dependency points one way: ``vigil.api`` imports ``vigil.runtime``, never back."""
    runtime = Path(vigil.runtime.__file__).parent
    offenders = {
        path.name: sorted(m for m in imported_modules(path.read_text()) if m == "vigil.api"
                          or m.startswith("vigil.api."))
        for path in sorted(runtime.glob("*.py"))
    }  # fmt: skip
    assert {k: v for k, v in offenders.items() if v} == {}
