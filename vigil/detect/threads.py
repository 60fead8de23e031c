"""How many ONNX Runtime intra-op threads a detector gets when ``detect.threads`` is unset.

Two callers want different things from the same CPU:

* ``vigil serve`` (and the cluster's detector actors) share one model among every camera,
  whose decoders are threads or processes of their own: the model keeps
  :data:`SHARED_MODEL_THREADS`, the figure its capacity was measured with (bench/capacity.py).
* ``vigil analyze`` runs one pipeline. With its decode thread, that thread needs a core while
  the detector runs, so the detector takes the others: ``max(1, cores - 1)``. On 2 cores
  that is 1 thread, the fastest placement measured at 1080p (bench/pipeline.py, README).
  Without the decode thread, decoding and inference alternate, so the shared-model figure
  stands.

An explicit ``detect.threads`` always wins.
"""

from __future__ import annotations

import os

#: Intra-op threads of a model shared by all cameras (`vigil serve`).
SHARED_MODEL_THREADS = 2


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def detector_threads(
    setting: int | None, *, decode_thread: bool = False, cores: int | None = None
) -> int:
    """The intra-op thread count for ``detect.threads`` = ``setting`` (None: automatic).

    ``decode_thread`` says whether frames are decoded in a thread of their own alongside
    this one detector (``vigil analyze``); ``cores`` defaults to :func:`available_cores`.
    """
    if setting is not None:
        return setting
    if not decode_thread:
        return SHARED_MODEL_THREADS
    n = available_cores() if cores is None else cores
    return max(1, n - 1)
