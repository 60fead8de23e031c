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
