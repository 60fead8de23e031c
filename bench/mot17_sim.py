"""Detections simulated from MOT17 training ground truth (no frames or public detections ship).

The noise model was fixed before any tracker was run on its output and is the same for every
sequence and every tracker; nothing in it is tuned (its constants are round numbers, written
down below with the reason for each). Per sequence the random generator is seeded from the
sequence name, so every run sees exactly the same detections.

Model, per ground-truth pedestrian box (``consider == 1``, class 1) and frame:

* **Misses grow as visibility falls**: detected with probability
  ``DETECT_AT_ZERO + (DETECT_AT_FULL - DETECT_AT_ZERO) * visibility``. Misses are correlated in
  time (a person the detector misses in one frame is likely missed in the next, as real
  detectors do): each person carries a Gaussian AR(1) latent with lag-one correlation
  ``MISS_CORRELATION``, and is detected where its normal CDF lies below the probability.
* **Box jitter proportional to size**: centre shifted by ``N(0, JITTER)`` box widths/heights,
  width and height scaled by ``exp(N(0, JITTER))``.
* **Overlapping confidences**: a true box scores ``0.25 + 0.65 * visibility + N(0, 0.1)``, a
  false one ``N(0.4, 0.2)``, clipped to 0.01..0.99 — occluded people and clutter share the
  0.2..0.6 band, as with a real detector.
* **False positives**: Poisson per frame, mean ``FP_PER_FRAME + FP_PER_PERSON * people``;
  half are ghosts next to a person (offset by 0.3..0.8 of its size, size scaled 0.7..1.3: the
  duplicate and part-body boxes that steal identities), half lie anywhere in the image with the
  size of a random person of the frame.
"""

from __future__ import annotations

import configparser
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

DETECT_AT_FULL = 0.95
DETECT_AT_ZERO = 0.05
MISS_CORRELATION = 0.8
JITTER = 0.05
FP_PER_FRAME = 0.3
FP_PER_PERSON = 0.02
SEED = 2026


@dataclass(frozen=True, slots=True)
class Sequence:
    """One MOT17 training sequence: ground truth rows ``frame, id, x, y, w, h`` and its info."""

    name: str
    fps: float
    length: int
    width: int
    height: int
    gt: F64  # (n, 6) pedestrians to be tracked
    visibility: F64  # (n,)


def load_sequence(seq_dir: Path) -> Sequence:
    info = configparser.ConfigParser()
    info.read(seq_dir / "seqinfo.ini")
    s = info["Sequence"]
    rows = np.loadtxt(seq_dir / "gt" / "gt.txt", delimiter=",")
    keep = (rows[:, 6] == 1) & (rows[:, 7] == 1)
    rows = rows[keep]
    return Sequence(
        seq_dir.name,
        float(s["frameRate"]),
        int(s["seqLength"]),
        int(s["imWidth"]),
        int(s["imHeight"]),
        rows[:, :6],
        rows[:, 8],
    )


def _normal_cdf(x: F64) -> F64:
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return 0.5 * (1.0 + erf(x / math.sqrt(2.0)))


def _detected(seq: Sequence, rng: np.random.Generator) -> npt.NDArray[np.bool_]:
    """Which ground-truth rows the simulated detector finds (time-correlated misses)."""
    p = DETECT_AT_ZERO + (DETECT_AT_FULL - DETECT_AT_ZERO) * np.clip(seq.visibility, 0.0, 1.0)
    latent = np.empty(len(seq.gt))
    order = np.lexsort((seq.gt[:, 0], seq.gt[:, 1]))  # by id, then frame
    ids = seq.gt[order, 1]
    frames = seq.gt[order, 0]
    noise = rng.standard_normal(len(order))
    innovation = math.sqrt(1.0 - MISS_CORRELATION**2)
    value = 0.0
    for k in range(len(order)):
        continues = k > 0 and ids[k] == ids[k - 1] and frames[k] == frames[k - 1] + 1
        value = MISS_CORRELATION * value + innovation * noise[k] if continues else noise[k]
        latent[order[k]] = value
    return np.asarray(_normal_cdf(latent) < p)


def _true_boxes(seq: Sequence, found: npt.NDArray[np.bool_], rng: np.random.Generator) -> F64:
    """(k, 6) rows ``frame, x1, y1, x2, y2, score`` for the detected people."""
    gt, vis = seq.gt[found], seq.visibility[found]
    w, h = gt[:, 4], gt[:, 5]
    cx = gt[:, 2] + w / 2 + rng.normal(0.0, JITTER, len(gt)) * w
    cy = gt[:, 3] + h / 2 + rng.normal(0.0, JITTER, len(gt)) * h
    w = w * np.exp(rng.normal(0.0, JITTER, len(gt)))
    h = h * np.exp(rng.normal(0.0, JITTER, len(gt)))
    score = np.clip(0.25 + 0.65 * vis + rng.normal(0.0, 0.1, len(gt)), 0.01, 0.99)
    return np.stack([gt[:, 0], cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, score], axis=1)


def _false_boxes(seq: Sequence, rng: np.random.Generator) -> F64:
    """(k, 6) false positives, rows like ``_true_boxes``."""
    out: list[F64] = []
    frames = seq.gt[:, 0].astype(np.int64)
    bounds = np.searchsorted(frames, np.arange(1, seq.length + 2))
    for frame in range(1, seq.length + 1):
        people = seq.gt[bounds[frame - 1] : bounds[frame]]
        count = rng.poisson(FP_PER_FRAME + FP_PER_PERSON * len(people))
        if count == 0 or len(people) == 0:
            continue
        src = people[rng.integers(0, len(people), count)]
        w = src[:, 4] * rng.uniform(0.7, 1.3, count)
        h = src[:, 5] * rng.uniform(0.7, 1.3, count)
        ghost = rng.random(count) < 0.5
        sign = rng.choice([-1.0, 1.0], (count, 2))
        offset = rng.uniform(0.3, 0.8, (count, 2)) * src[:, 4:6] * sign
        near = src[:, 2:4] + src[:, 4:6] / 2 + offset
        anywhere = rng.uniform(0, 1, (count, 2)) * [seq.width, seq.height]
        centre = np.where(ghost[:, None], near, anywhere)
        score = np.clip(rng.normal(0.4, 0.2, count), 0.01, 0.99)
        out.append(
            np.stack(
                [
                    np.full(count, frame),
                    centre[:, 0] - w / 2,
                    centre[:, 1] - h / 2,
                    centre[:, 0] + w / 2,
                    centre[:, 1] + h / 2,
                    score,
                ],
                axis=1,
            )
        )
    return np.concatenate(out) if out else np.zeros((0, 6))


def simulate(seq: Sequence, seed: int = SEED) -> F64:
    """(k, 6) simulated detections ``frame, x1, y1, x2, y2, score``, sorted by frame.

    ``seed`` draws another sample of the same noise (more tuning data from the same sequences).
    """
    # The gt must be sorted by frame for the per-frame slices below.
    rng = np.random.default_rng([seed, zlib.crc32(seq.name.encode())])
    seq = _sorted(seq)
    found = _detected(seq, rng)
    rows = np.concatenate([_true_boxes(seq, found, rng), _false_boxes(seq, rng)])
    return rows[np.argsort(rows[:, 0], kind="stable")]


def _sorted(seq: Sequence) -> Sequence:
    order = np.argsort(seq.gt[:, 0], kind="stable")
    return Sequence(
        seq.name, seq.fps, seq.length, seq.width, seq.height, seq.gt[order], seq.visibility[order]
    )
