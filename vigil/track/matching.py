"""Association primitives: class gating and optimal linear assignment (IoU is ``vigil.boxes``).

All functions take and return plain numpy arrays, so they can be tested against hand-computed
values and reused by any tracker.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: Cost given to forbidden pairs: finite (scipy rejects all-infinite rows), and far above any
#: real cost so a forbidden pair is chosen only where nothing else is possible — and is then
#: discarded by the ``max_cost`` check.
_FORBIDDEN = 1e6


def class_gate(cost: F64, row_class: I64, col_class: I64) -> F64:
    """``cost`` with pairs of different classes forbidden: a person never continues a car."""
    same = np.asarray(row_class)[:, None] == np.asarray(col_class)[None, :]
    return np.where(same, cost, _FORBIDDEN)


def linear_assignment(cost: F64, max_cost: float) -> tuple[I64, I64, I64]:
    """Minimum-cost one-to-one assignment of rows to columns, keeping pairs with cost <= max_cost.

    Returns ``(matches (k, 2) [row, col], unmatched_rows, unmatched_cols)``, each sorted, as
    int64 index arrays. Pairs above ``max_cost`` are forbidden *before* solving, so a bad pair
    cannot displace a good one.
    """
    cost = np.asarray(cost, dtype=np.float64)
    n, m = cost.shape
    if n == 0 or m == 0:
        none = np.zeros((0, 2), np.int64)
        return none, np.arange(n, dtype=np.int64), np.arange(m, dtype=np.int64)
    gated = np.where(cost <= max_cost, cost, _FORBIDDEN)
    rows, cols = linear_sum_assignment(gated)
    keep = gated[rows, cols] <= max_cost
    matches = np.stack([rows[keep], cols[keep]], axis=1).astype(np.int64)
    order = np.argsort(matches[:, 0], kind="stable")
    matches = matches[order]
    free_rows, free_cols = np.ones(n, bool), np.ones(m, bool)
    free_rows[matches[:, 0]] = False
    free_cols[matches[:, 1]] = False
    return matches, np.flatnonzero(free_rows), np.flatnonzero(free_cols)


def direction_consistency(track_velocity: F64, track_last: F64, det_centres: F64) -> F64:
    """OC-SORT's velocity-direction term: (n, m) in -0.5..0.5, higher when consistent.

    ``track_velocity`` (n, 2) is each track's recent direction of motion (from observations,
    not from the filter), ``track_last`` (n, 2) its last observed centre, ``det_centres``
    (m, 2) the detections' centres. A detection that lies where the track was heading scores
    +0.5, one behind it -0.5. Tracks without a known direction (zero vector) score 0.
    """
    v = np.asarray(track_velocity, dtype=np.float64)
    speed = np.linalg.norm(v, axis=1)
    valid = speed > 1e-6
    u = np.where(valid[:, None], v / np.maximum(speed, 1e-6)[:, None], 0.0)
    d = det_centres[None, :, :] - track_last[:, None, :]
    dn = np.linalg.norm(d, axis=2)
    dirs = d / np.maximum(dn, 1e-6)[:, :, None]
    cos = np.clip(np.einsum("nk,nmk->nm", u, dirs), -1.0, 1.0)
    score = (np.pi / 2.0 - np.arccos(cos)) / np.pi
    return np.where(valid[:, None] & (dn > 1e-6), score, 0.0)
