"""Frame.bgr_region on a frame without a region loader (from a BGR image)."""

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
