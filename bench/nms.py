"""NMS cost: the numpy greedy loop Vigil used before against ``vigil.boxes.nms`` (OpenCV).

Two kinds of candidates, 8 classes: "clustered" like a YOLOX output at its cap (about 20
jittered boxes per object, some of a second class), where most boxes are suppressed early, and
"scattered" (uniform boxes that rarely overlap), the worst case for a loop with one step per
kept box. For 100 and 1,000 boxes of each it prints the median ms of both implementations
(class-aware, as the detector runs it), the ratio, and in how many cases the two kept the same
boxes in the same order. The two take turns within each round, so load from other processes
hits both alike.

    python bench/nms.py [--trials 50] [--rounds 5]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from vigil.boxes import iou_matrix, nms

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
Case = tuple[F32, F32, I64]
NmsFn = Callable[[F32, F32, float, I64], I64]
IOU = 0.45  # the detector's default


def numpy_nms(xyxy: F32, scores: F32, iou_threshold: float, class_id: I64) -> I64:
    """The earlier ``detect.postprocess.nms``: one kept box against all remaining per step."""
    boxes = np.asarray(xyxy, dtype=np.float64)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    keep: list[int] = []
    while order.size:
        best, rest = int(order[0]), order[1:]
        keep.append(best)
        overlap = iou_matrix(boxes[best], boxes[rest])[0]
        suppressed = (overlap > iou_threshold) & (class_id[rest] == class_id[best])
        order = rest[~suppressed]
    return np.asarray(keep, dtype=np.int64)


def opencv_nms(xyxy: F32, scores: F32, iou_threshold: float, class_id: I64) -> I64:
    return nms(xyxy, scores, iou_threshold, class_id)


def scattered(rng: np.random.Generator, n: int) -> Case:
    """``n`` uniform boxes of 5..100 px in a 416x416 input."""
    xy = rng.uniform(0, 400, (n, 2))
    xyxy = np.concatenate([xy, xy + rng.uniform(5, 100, (n, 2))], axis=1).astype(np.float32)
    return xyxy, rng.uniform(0.3, 1.0, n).astype(np.float32), rng.integers(0, 8, n)


def clustered(rng: np.random.Generator, n: int) -> Case:
    """``n`` candidates in a 416x416 input: about 20 per object, jittered by ~10 %."""
    objects = max(1, n // 20)
    centre = rng.uniform(20, 396, (objects, 2))
    size = rng.uniform(10, 200, (objects, 2))
    label = rng.integers(0, 8, objects)
    which = rng.integers(0, objects, n)
    c = centre[which] + rng.normal(0, 0.1, (n, 2)) * size[which]
    s = size[which] * rng.uniform(0.8, 1.2, (n, 2))
    xyxy = np.concatenate([c - s / 2, c + s / 2], axis=1).astype(np.float32)
    second = rng.uniform(size=n) < 0.1  # a truck that also scores as a car
    classes = np.where(second, (label[which] + 1) % 8, label[which]).astype(np.int64)
    return xyxy, rng.uniform(0.3, 1.0, n).astype(np.float32), classes


def ms_per_call(fn: NmsFn, cases: list[Case]) -> float:
    start = time.perf_counter()
    for xyxy, scores, classes in cases:
        fn(xyxy, scores, IOU, classes)
    return (time.perf_counter() - start) * 1000.0 / len(cases)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50, help="random cases per size")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"class-aware NMS at IoU {IOU}, {args.trials} random cases per size, median of "
          f"{args.rounds} rounds; 1-minute load average before: {_loadavg()}")  # fmt: skip
    for kind, n in itertools.product((clustered, scattered), (100, 1000)):
        cases = [kind(rng, n) for _ in range(args.trials)]
        same = sum(
            np.array_equal(numpy_nms(*c[:2], IOU, c[2]), opencv_nms(*c[:2], IOU, c[2]))
            for c in cases
        )
        timings: dict[str, list[float]] = {"numpy": [], "opencv": []}
        for _ in range(args.rounds):
            timings["numpy"].append(ms_per_call(numpy_nms, cases))
            timings["opencv"].append(ms_per_call(opencv_nms, cases))
        numpy_ms = statistics.median(timings["numpy"])
        opencv_ms = statistics.median(timings["opencv"])
        print(
            f"{kind.__name__:9s} {n:5d} boxes: numpy {numpy_ms:7.2f} ms  "
            f"opencv {opencv_ms:6.2f} ms  x{numpy_ms / opencv_ms:5.1f}  "
            f"same boxes in {same} of {len(cases)} cases"
        )


def _loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().split(" ", 3)[0]
    except OSError:
        return "?"


if __name__ == "__main__":
    main()
