"""Import py-motmetrics 1.4 under NumPy 2 (benchmarks only, never the package).

motmetrics 1.4 calls ``np.asfarray``, which NumPy 2 removed; restore an equivalent before the
import so the published MOTChallenge numbers can be reproduced.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def import_motmetrics() -> Any:
    if not hasattr(np, "asfarray"):
        np.asfarray = lambda a, dtype=np.float64: np.asarray(a, dtype=dtype)  # type: ignore[attr-defined]
    import motmetrics

    return motmetrics
