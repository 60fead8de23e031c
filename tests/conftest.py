"""Shared fixtures: paths to shared models and footage, skipping visibly when absent.

Outside CI a missing shared file skips the test with the reason; under ``CI=true`` it fails,
because CI always has ``../shared`` and a silent skip there would hide a broken test.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vigil.paths import shared_data_dir, shared_models_dir


def require_file(path: Path) -> Path:
    if path.exists():
        return path
    reason = f"shared file {path} is missing (set VIGIL_SHARED_DIR to the shared folder)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def yolox_nano_path() -> Path:
    return require_file(shared_models_dir() / "yolox_nano.onnx")


@pytest.fixture
def yunet_path() -> Path:
    return require_file(shared_models_dir() / "yunet_face_640.onnx")


@pytest.fixture
def clips_dir() -> Path:
    return require_file(shared_data_dir() / "clips")


@pytest.fixture
def mot15_dir() -> Path:
    return require_file(shared_data_dir() / "mot15")


@pytest.fixture
def mot17_dir() -> Path:
    return require_file(shared_data_dir() / "mot17")


_EXIT_STATUS: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _EXIT_STATUS.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave with pytest's own status once every fixture, plugin and report is done, without
    the interpreter's finalization: daemon threads that tests leave in C code (libx264, ONNX
    Runtime, Ray's workers) can crash it as it tears modules down (CI: 1983 passed, then a
    segmentation fault, exit 139). The servers the tests start are stopped by their fixtures
    before this; nothing of Vigil's runs at exit."""
    if not _EXIT_STATUS or os.environ.get("VIGIL_PYTEST_FINALIZE") == "1":
        return
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_EXIT_STATUS[-1])
