"""The detector contract: several images in, one ``Detections`` per image out.

Inference is stateless, so one detector serves every camera; callers batch frames (or crops
of busy regions) from many cameras into one call, which is where accelerators earn their keep.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from vigil.types import Detections, ImageArray


@runtime_checkable
class Detector(Protocol):
    """An object detector.

    ``class_names[i]`` names ``class_id == i``. ``input_size`` is the network input
    ``(width, height)`` in pixels: images of any size are letterboxed to it.
    """

    @property
    def class_names(self) -> Sequence[str]: ...

    @property
    def input_size(self) -> tuple[int, int]: ...

    def detect_batch(self, images: Sequence[ImageArray]) -> list[Detections]:
        """Detect objects in each of ``images`` (BGR uint8, ``(h, w, 3)``, any sizes).

        Returns one ``Detections`` per image, in the same order, with boxes in that image's
        pixels, clipped to it, and ``tracker_id`` all -1. An empty sequence gives ``[]``.
        """
        ...
