"""BoxHold keeps a region for ``hold`` frames after its last detection, then lets it go."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.privacy.hold import BoxHold

NONE = np.zeros((0, 4), np.float32)
FACE = np.array([[100, 100, 120, 124]], np.float32)


@pytest.mark.parametrize("hold", [0, 1, 5])
def test_region_held_exactly_hold_frames(hold: int) -> None:
    h = BoxHold(hold)
    assert len(h.update(FACE)) == 1
    for _ in range(hold):
        out = h.update(NONE)
        assert len(out) == 1
        # The held box still covers where the face was.
        assert out[0, 0] <= FACE[0, 0]
        assert out[0, 2] >= FACE[0, 2]
    assert len(h.update(NONE)) == 0


def test_moving_face_keeps_one_region_and_is_predicted() -> None:
    h = BoxHold(3)
    for step in range(5):
        out = h.update(FACE + np.array([[8 * step, 0, 8 * step, 0]], np.float32))
        assert len(out) == 1
    held = h.update(NONE)
    # Predicted forward along its motion: the held box covers where the face would be next.
    nxt = FACE[0] + np.array([40, 0, 40, 0], np.float32)
    assert held[0, 0] <= nxt[0] + 1
    assert held[0, 2] >= nxt[2] - 1


def test_held_box_grows_while_unseen() -> None:
    h = BoxHold(10)
    h.update(FACE)
    first, second = h.update(NONE)[0], h.update(NONE)[0]
    assert np.prod(second[2:] - second[:2]) > np.prod(first[2:] - first[:2])


def test_caller_ids_associate_even_without_overlap() -> None:
    h = BoxHold(2)
    h.update(FACE, np.array([7]))
    far = np.array([[300, 300, 320, 324]], np.float32)
    assert len(h.update(far, np.array([7]))) == 1  # same id: the region jumped, not a new one


def test_reset_forgets() -> None:
    h = BoxHold(5)
    h.update(FACE)
    h.reset()
    assert len(h.update(NONE)) == 0
    assert len(h) == 0
