"""Frame.bgr_region on a frame without a region loader (from a BGR image); the lazy luma."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.types import Frame


def test_a_region_is_a_copy_and_one_outside_the_frame_is_refused() -> None:
    image = np.arange(20 * 30 * 3, dtype=np.uint32).astype(np.uint8).reshape(20, 30, 3)
    frame = Frame.from_bgr(image)
    region = frame.bgr_region((5, 5, 10, 12))
    np.testing.assert_array_equal(region, image[5:12, 5:10])
    region[:] = 0
    assert frame.bgr()[5, 5].any()  # the frame's own image is untouched
    for bad in ((5, 5, 40, 12), (5, 5, 5, 12), (-1, 0, 4, 4)):
        with pytest.raises(ValueError, match="outside"):
            frame.bgr_region(bad)


def test_a_lazy_luma_is_built_once_and_the_reduced_one_always_by_the_loader() -> None:
    calls: list[tuple[int, int] | None] = []

    def luma(size: tuple[int, int] | None) -> np.ndarray:
        calls.append(size)
        w, h = size or (30, 20)
        return np.full((h, w), 7 if size else 9, np.uint8)

    frame = Frame(camera_id="c", seq=0, pts=0.0, wall_time=0.0, luma_loader=luma,
                  size=(30, 20), loader=lambda size: np.zeros((20, 30, 3), np.uint8))  # fmt: skip
    assert frame.size == (30, 20)
    assert calls == []  # nothing built before it is asked for
    assert frame.luma_at((15, 10)).shape == (10, 15)
    assert int(frame.luma.max()) == 9
    assert frame.luma is frame.luma
    # Reduced through the loader even now that the full plane exists: the same result
    # whether or not something read the full plane first.
    assert int(frame.luma_at((15, 10)).max()) == 7
    assert frame.luma_at((30, 20)) is frame.luma
    assert calls == [(15, 10), None, (15, 10)]
    with pytest.raises(ValueError, match="luma_loader"):
        Frame(camera_id="c", seq=0, pts=0.0, wall_time=0.0, loader=frame.bgr)
