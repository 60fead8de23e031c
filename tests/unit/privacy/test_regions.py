"""``RegionFaceDetector``: whole frames now and then, in between only where a face can be."""

from __future__ import annotations

import numpy as np

from vigil.privacy.regions import RegionFaceDetector
from vigil.types import FloatArray, ImageArray

W, H = 320, 240


class SquareFinder:
    """A stand-in face detector: the bounding box of the bright pixels, in the image given
    (a crop or the whole frame); it records the size of every image it was shown."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def detect(self, image: ImageArray) -> FloatArray:
        self.calls.append((image.shape[1], image.shape[0]))
        ys, xs = np.nonzero(image[:, :, 0] > 200)
        if not len(xs):
            return np.zeros((0, 5), np.float32)
        return np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1, 0.9]], np.float32)


def frame(square: tuple[int, int] | None = None) -> ImageArray:
    image = np.full((H, W, 3), 40, np.uint8)
    if square is not None:
        x, y = square
        image[y : y + 20, x : x + 20] = 255
    return image


def test_full_passes_motion_and_held_faces() -> None:
    inner = SquareFinder()
    regions = RegionFaceDetector(inner, full_every=10)
    assert len(regions.detect(frame())) == 0
    assert inner.calls == [(W, H)], "the first frame is searched whole"
    for _ in range(3):  # nothing moves: nothing to search
        assert len(regions.detect(frame())) == 0
    assert len(inner.calls) == 1
    found = regions.detect(frame((200, 100)))  # a face arrives: it moved, so it is searched
    np.testing.assert_allclose(found[0, :4], [200, 100, 220, 120])
    crop = inner.calls[-1]
    assert crop[0] < W / 2, f"only a region around it was searched, not {crop}"
    assert crop[1] < H / 2
    still = regions.detect(frame((200, 100)))  # it stays still: searched where it was
    np.testing.assert_allclose(still[0, :4], [200, 100, 220, 120])
    for _ in range(4):
        regions.detect(frame((200, 100)))
    assert regions.frames == 10
    regions.detect(frame((200, 100)))
    assert inner.calls[-1] == (W, H), "every full_every frames the whole frame again"
    assert regions.full_passes == 2


def test_hints_are_always_searched_and_large_motion_means_whole_frame() -> None:
    inner = SquareFinder()
    regions = RegionFaceDetector(inner, full_every=100,
                                 hints=np.array([[10, 10, 60, 60]], np.float32))  # fmt: skip
    regions.detect(frame((20, 20)))  # the first frame: whole
    # Say the detector missed that face on the full pass, and it does not move: no motion
    # and no held face point at it, only the hint (where a person is known to be) does.
    regions._faces = np.zeros((0, 4), np.float32)
    inner.calls.clear()
    found = regions.detect(frame((20, 20)))
    np.testing.assert_allclose(found[0, :4], [20, 20, 40, 40])
    assert len(inner.calls) == 1
    assert inner.calls[0][0] < W, "the hint alone was searched"
    without = RegionFaceDetector(SquareFinder(), full_every=100)
    without.detect(frame((20, 20)))
    without._faces = np.zeros((0, 4), np.float32)
    assert len(without.detect(frame((20, 20)))) == 0, "no hint: found at the next full pass"
    everything = np.full((H, W, 3), 200, np.uint8)  # the whole picture changes (lights on)
    inner.calls.clear()
    regions.detect(everything)
    assert inner.calls == [(W, H)]
