"""The demo camera's footage: a street in front of a shop, drawn and encoded once.

People walk along the pavement and in and out of the shop's door; cars drive along the road
in both directions. The demo serves the video as a file camera (played in real time, looped,
recorded), so a first-time user sees the whole product without a camera or a model: the
motion detector finds the movers, the tracker follows them, the door line counts who enters
and leaves, and the road zone counts what passes.

Everything is drawn with OpenCV from a fixed script, so the video is the same on every
machine; ``render_demo_video`` writes it into the cache once (a few seconds of CPU).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vigil.media.h264 import Encoding, H264File, partial_file
from vigil.types import ImageArray

WIDTH, HEIGHT, FPS = 640, 360, 15.0
#: One loop of the scene, in seconds.
DURATION = 60.0
#: Bumped whenever the drawing changes, so a cached video of an older scene is redrawn.
SCENE_VERSION = 1

# Bands of the picture, as fractions of the height (top to bottom).
_FACADE_END, _PAVEMENT_END, _ROAD_END = 0.42, 0.62, 0.92
#: The shop door, as fractions of the width.
DOOR_X = (0.44, 0.54)

#: Rules of the demo camera that fit this drawing (fractions of the frame).
DOOR_LINE = [[0.42, 0.47], [0.56, 0.47]]
ROAD_ZONE = [[0.0, 0.64], [1.0, 0.64], [1.0, 0.9], [0.0, 0.9]]


@dataclass(frozen=True, slots=True)
class Mover:
    """Someone or something moving along straight legs between ``(t, x, y)`` waypoints."""

    kind: str  # "person" or "car"
    path: tuple[tuple[float, float, float], ...]  # (seconds, x, y) with x, y fractions
    colour: tuple[int, int, int]

    def where(self, t: float) -> tuple[float, float, float] | None:
        """``(x, y, dx)`` in pixels at time ``t`` (dx: signed speed in x), None when absent."""
        for (t0, x0, y0), (t1, x1, y1) in zip(self.path, self.path[1:], strict=False):
            if t0 <= t <= t1:
                a = (t - t0) / (t1 - t0) if t1 > t0 else 0.0
                x = (x0 + a * (x1 - x0)) * WIDTH
                y = (y0 + a * (y1 - y0)) * HEIGHT
                return x, y, (x1 - x0) / max(t1 - t0, 1e-6)
        return None


_CLOTHES = ((40, 40, 160), (160, 90, 30), (50, 120, 50), (30, 30, 30), (200, 200, 210),
            (20, 140, 200), (120, 40, 120))  # fmt: skip
_PAINT = ((30, 30, 190), (200, 120, 20), (210, 210, 215), (40, 40, 40), (30, 150, 220))


def _script() -> list[Mover]:
    """Who moves where: 9 walkers (3 enter the shop, 2 come out) and 8 cars."""
    p = _PAVEMENT_END - 0.02  # feet on the pavement
    walkers = [
        ((0.0, -0.05, p), (14.0, 1.05, p)),
        ((4.0, 1.05, p - 0.03), (20.0, -0.05, p - 0.03)),
        ((8.0, -0.05, p), (13.0, 0.49, p), (17.0, 0.49, 0.43)),  # walks into the shop
        ((18.0, 0.49, 0.43), (22.0, 0.49, p), (30.0, 1.05, p)),  # comes out
        ((24.0, 1.05, p), (30.0, 0.49, p - 0.01), (34.0, 0.49, 0.43)),  # in
        ((31.0, -0.05, p - 0.02), (47.0, 1.05, p - 0.02)),
        ((38.0, 0.49, 0.43), (42.0, 0.49, p), (52.0, -0.05, p)),  # out
        ((44.0, -0.05, p), (50.0, 0.49, p), (54.0, 0.49, 0.43)),  # in
        ((46.0, 1.05, p - 0.03), (59.0, -0.05, p - 0.03)),
    ]
    movers = [Mover("person", tuple(w), _CLOTHES[i % len(_CLOTHES)])
              for i, w in enumerate(walkers)]  # fmt: skip
    near, far = 0.86, 0.72  # wheels of the near lane (left to right) and the far lane
    for i, start in enumerate((2.0, 12.0, 27.0, 41.0)):
        movers.append(Mover("car", ((start, -0.2, near), (start + 7.0, 1.2, near)),
                            _PAINT[i % len(_PAINT)]))  # fmt: skip
    for i, start in enumerate((7.0, 21.0, 35.0, 50.0)):
        movers.append(Mover("car", ((start, 1.2, far), (start + 8.0, -0.2, far)),
                            _PAINT[(i + 2) % len(_PAINT)]))  # fmt: skip
    return movers


def background() -> ImageArray:
    """The empty street: facade with windows and a door, pavement, road, kerb, grass."""
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    facade, pavement, road = (round(f * HEIGHT) for f in (_FACADE_END, _PAVEMENT_END, _ROAD_END))
    image[:facade] = (120, 140, 170)  # brick-ish
    for y in range(8, facade, 14):  # courses of bricks
        cv2.line(image, (0, y), (WIDTH, y), (105, 122, 150), 1)
    for x in (40, 130, 420, 510):  # shop windows
        cv2.rectangle(image, (x, 40), (x + 80, facade - 30), (90, 70, 50), -1)
        cv2.rectangle(image, (x, 40), (x + 80, facade - 30), (60, 60, 60), 3)
    door = (round(DOOR_X[0] * WIDTH), round(DOOR_X[1] * WIDTH))
    cv2.rectangle(image, (door[0], 50), (door[1], facade), (40, 60, 80), -1)
    cv2.rectangle(image, (door[0] - 14, 20), (door[1] + 14, 44), (40, 40, 150), -1)  # awning
    cv2.putText(image, "SHOP", (door[0] - 6, 38), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                (235, 235, 235), 1, cv2.LINE_AA)  # fmt: skip
    image[facade:pavement] = (175, 178, 180)
    for x in range(0, WIDTH, 48):  # paving slabs
        cv2.line(image, (x, facade), (x, pavement), (155, 158, 160), 1)
    image[pavement : pavement + 4] = (120, 120, 120)  # kerb
    image[pavement + 4 : road] = (70, 72, 75)
    middle = (pavement + road) // 2
    for x in range(0, WIDTH, 60):
        cv2.line(image, (x, middle), (x + 30, middle), (230, 230, 230), 3)
    image[road:] = (60, 130, 70)
    grain = np.random.default_rng(7).normal(0, 4, image.shape)
    return np.asarray(np.clip(image + grain, 0, 255), np.uint8)


def _draw_person(image: ImageArray, x: float, y: float, t: float, colour: tuple[int, ...]) -> None:
    """A walker whose feet are at ``(x, y)``; legs swing with the step."""
    scale = 0.8 + 0.4 * (y / HEIGHT)  # nearer people look larger
    h = 64 * scale
    cx, feet = round(x), round(y)
    step = math.sin(t * 2 * math.pi * 1.8) * 7 * scale
    hip = round(feet - 0.45 * h)
    leg = (40, 40, 50)
    cv2.line(image, (cx, hip), (round(cx + step), feet), leg, max(2, round(5 * scale)))
    cv2.line(image, (cx, hip), (round(cx - step), feet), leg, max(2, round(5 * scale)))
    top = round(feet - 0.85 * h)
    cv2.rectangle(image, (round(cx - 9 * scale), top), (round(cx + 9 * scale), hip),
                  colour, -1)  # fmt: skip
    cv2.circle(image, (cx, round(feet - 0.93 * h)), max(3, round(7 * scale)), (120, 160, 205), -1)


def _draw_car(image: ImageArray, x: float, y: float, dx: float, colour: tuple[int, ...]) -> None:
    """A car whose wheels touch the road at ``(x, y)``, its cabin towards where it goes."""
    length, height = 130, 46
    x1, x2 = round(x - length / 2), round(x + length / 2)
    bottom = round(y)
    cv2.rectangle(image, (x1, bottom - height + 16), (x2, bottom - 8), colour, -1)
    front = 1 if dx >= 0 else -1
    cab = (round(x - 30 * front), round(x + 30 * front))
    cv2.rectangle(image, (min(cab), bottom - height), (max(cab), bottom - height + 18), colour, -1)
    cv2.rectangle(image, (min(cab) + 6, bottom - height + 4), (max(cab) - 6, bottom - height + 16),
                  (200, 180, 150), -1)  # fmt: skip
    for wx in (x1 + 24, x2 - 24):
        cv2.circle(image, (wx, bottom - 8), 10, (20, 20, 20), -1)


def render_frame(t: float, movers: list[Mover], empty: ImageArray) -> ImageArray:
    """The street at ``t`` seconds: far things first, so nearer ones cover them."""
    image = empty.copy()
    present = [(m, pos) for m in movers if (pos := m.where(t % DURATION)) is not None]
    for mover, (x, y, dx) in sorted(present, key=lambda item: item[1][1]):
        if mover.kind == "car":
            _draw_car(image, x, y, dx, mover.colour)
        else:
            _draw_person(image, x, y, t, mover.colour)
    return image


def render_demo_video(path: Path) -> Path:
    """Write one loop of the scene as H.264 MP4 (a keyframe each second) unless cached."""
    if path.is_file():
        return path
    movers, empty = _script(), background()
    # One keyframe a second lets the recorder cut its segments where asked.
    encoding = Encoding(crf=26, keyframe_s=1.0)
    with partial_file(path) as partial, H264File(partial, FPS, (WIDTH, HEIGHT),
                                                 encoding=encoding) as out:  # fmt: skip
        for i in range(round(DURATION * FPS)):
            out.write(render_frame(i / FPS, movers, empty))
    return path
