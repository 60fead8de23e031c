"""Boxes, track ids, zones and lines drawn on a (redacted) frame."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from vigil.config.models import LineConfig, ZoneConfig
from vigil.types import Detections, ImageArray

_ZONE = (0, 200, 255)
_LINE = (255, 80, 255)
_TEXT = (255, 255, 255)
#: A box no track holds yet (id -1): one colour for all of them (red).
_UNTRACKED = (40, 40, 255)


def _colour(track_id: int) -> tuple[int, int, int]:
    # A fixed pseudo-random colour per id, so one object keeps its colour across frames.
    if track_id < 0:
        return _UNTRACKED
    rng = np.random.default_rng(track_id * 7919 + 17)
    b, g, r = (int(c) for c in rng.integers(64, 256, 3))
    return b, g, r


class Annotator:
    """Draws onto copies of frames of one size (``frame_size`` = ``(width, height)``)."""

    def __init__(
        self,
        frame_size: tuple[int, int],
        class_names: Sequence[str],
        zones: Mapping[str, ZoneConfig],
        lines: Mapping[str, LineConfig],
    ) -> None:
        w, h = frame_size
        scale = np.array([w, h], np.float64)
        self._names = list(class_names)
        self._zones = {
            name: (np.asarray(z.polygon) * scale).round().astype(np.int32)
            for name, z in zones.items()
        }
        self._lines = {
            name: (np.asarray(ln.points) * scale).round().astype(np.int32)
            for name, ln in lines.items()
        }
        self._thick = max(1, round(max(w, h) / 400))
        self._font = max(0.4, max(w, h) / 1400)

    def draw(
        self,
        image: ImageArray,
        tracked: Detections,
        counts: Mapping[str, tuple[int, int]] | None = None,
    ) -> ImageArray:
        """A copy of ``image`` with rules, boxes and labels; ``counts`` = line → (a→b, b→a)."""
        out = image.copy()
        self._draw_rules(out, counts or {})
        for box, cls, tid, conf in zip(
            tracked.xyxy, tracked.class_id, tracked.tracker_id, tracked.confidence, strict=True
        ):
            x1, y1, x2, y2 = (round(float(v)) for v in box)
            colour = _colour(int(tid))
            cv2.rectangle(out, (x1, y1), (x2, y2), colour, self._thick)
            label = self._names[int(cls)] if 0 <= int(cls) < len(self._names) else str(cls)
            ident = f"#{int(tid)} " if tid >= 0 else ""  # -1: a detection no track holds
            self._label(out, f"{ident}{label} {float(conf):.2f}", (x1, y1), colour)
        return out

    def _draw_rules(self, out: ImageArray, counts: Mapping[str, tuple[int, int]]) -> None:
        for name, poly in self._zones.items():
            cv2.polylines(out, [poly], True, _ZONE, self._thick)
            self._label(out, name, (int(poly[0][0]), int(poly[0][1])), _ZONE)
        for name, (a, b) in self._lines.items():
            cv2.arrowedLine(
                out,
                tuple(int(v) for v in a),
                tuple(int(v) for v in b),
                _LINE,
                self._thick + 1,
                tipLength=0.03,
            )
            ab, ba = counts.get(name, (0, 0))
            self._label(out, f"{name} A>B {ab}  B>A {ba}", (int(a[0]), int(a[1])), _LINE)

    def _label(
        self, out: ImageArray, text: str, at: tuple[int, int], colour: tuple[int, int, int]
    ) -> None:
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, self._font, 1)
        x, y = max(0, at[0]), max(th + base, at[1])
        cv2.rectangle(out, (x, y - th - base), (x + tw, y), colour, -1)
        cv2.putText(
            out,
            text,
            (x, y - base),
            cv2.FONT_HERSHEY_SIMPLEX,
            self._font,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
