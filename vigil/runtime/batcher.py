"""``BatchingDetector``: one detector shared by every camera, fed by a micro-batcher.

Camera threads call :meth:`BatchingDetector.detect_batch` as they would call the detector
itself; their requests are queued, and one inference thread packs the waiting requests into
ONE call of the wrapped detector, up to ``max_batch`` images, waiting at most ``max_wait``
seconds after the first request for others to join (what DeepStream's ``nvstreammux`` does
for a GPU, and what keeps a CPU's ONNX Runtime busy with fewer, larger calls). Each caller
gets back exactly the ``Detections`` of its own images, in order.

A request is never split: one caller's images (a frame's busy regions) stay in one call, so a
request larger than ``max_batch`` runs alone. An exception raised by inference reaches every
caller of that batch and no other; ``close()`` fails every waiting request with a
``ModelError`` instead of leaving camera threads blocked for ever.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from vigil.detect.base import Detector
from vigil.errors import ModelError
from vigil.types import Detections, ImageArray

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BatcherStats:
    """Counters since the batcher started.

    ``batches``: inference calls; ``images``/``requests``: what they carried;
    ``queue_depth``: requests waiting now; ``inference_ms``: mean wall time of one call;
    ``last_batch``: images in the latest call.
    """

    batches: int
    requests: int
    images: int
    queue_depth: int
    inference_ms: float
    last_batch: int

    @property
    def mean_batch(self) -> float:
        """Mean images per inference call (0 before the first)."""
        return self.images / self.batches if self.batches else 0.0


@dataclass(slots=True)
class _Request:
    images: Sequence[ImageArray]
    future: Future[list[Detections]]


class BatchingDetector:
    """A thread-safe ``Detector`` that batches concurrent requests across cameras.

    ``detector`` must accept ``detect_batch`` calls from the batcher's own thread (one at a
    time). ``max_batch >= 1`` images per call; ``max_wait >= 0`` seconds.
    """

    def __init__(self, detector: Detector, max_batch: int = 8, max_wait: float = 0.01) -> None:
        if max_batch < 1 or max_wait < 0:
            raise ValueError(f"need max_batch >= 1 and max_wait >= 0, got {max_batch}, {max_wait}")
        self.detector = detector
        self.max_batch = max_batch
        self.max_wait = max_wait
        self._queue: deque[_Request] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._batches = self._requests = self._images = self._last = 0
        self._busy_s = 0.0
        self._thread = threading.Thread(target=self._run, name="vigil-batcher", daemon=True)
        self._thread.start()

    @property
    def class_names(self) -> Sequence[str]:
        return self.detector.class_names

    @property
    def input_size(self) -> tuple[int, int]:
        return self.detector.input_size

    @property
    def providers(self) -> list[str]:
        """Where the shared model runs (ONNX Runtime's active providers, best first; empty
        for a detector that is no ONNX session): for status and metrics."""
        providers = getattr(self.detector, "providers", None)
        return list(providers) if providers else []

    @property
    def stats(self) -> BatcherStats:
        with self._cond:
            ms = 1000.0 * self._busy_s / self._batches if self._batches else 0.0
            return BatcherStats(self._batches, self._requests, self._images, len(self._queue),
                                ms, self._last)  # fmt: skip

    def detect_batch(self, images: Sequence[ImageArray]) -> list[Detections]:
        """Detections of ``images`` (see ``Detector.detect_batch``); blocks until inferred.

        Raises what inference raised, or ``ModelError`` once the batcher is closed.
        """
        if not images:
            return []
        request = _Request(list(images), Future())
        with self._cond:
            if self._closed:
                raise ModelError("the shared detector is closed (Vigil is shutting down)")
            self._queue.append(request)
            self._cond.notify_all()
        return request.future.result()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the inference thread; waiting callers get a ``ModelError``. Idempotent."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    # -- the inference thread ---------------------------------------------------------------

    def _run(self) -> None:
        while True:
            batch = self._collect()
            if batch is None:
                return
            self._infer(batch)

    def _collect(self) -> list[_Request] | None:
        """The next batch: waits for a first request, then up to ``max_wait`` for more."""
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if self._closed:
                self._fail_waiting()
                return None
            batch = [self._queue.popleft()]
            size = len(batch[0].images)
            deadline = time.monotonic() + self.max_wait
            while size < self.max_batch and not self._closed:
                if self._queue and size + len(self._queue[0].images) <= self.max_batch:
                    request = self._queue.popleft()
                    batch.append(request)
                    size += len(request.images)
                    continue
                if self._queue:
                    break  # the next request does not fit: it leads the next batch
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return batch

    def _fail_waiting(self) -> None:
        while self._queue:
            self._queue.popleft().future.set_exception(
                ModelError("the shared detector was closed before this frame was inferred")
            )

    def _infer(self, batch: list[_Request]) -> None:
        images = [image for request in batch for image in request.images]
        started = time.perf_counter()
        try:
            results = self.detector.detect_batch(images)
            if len(results) != len(images):
                raise ModelError(
                    f"detector returned {len(results)} results for {len(images)} images"
                )
        except BaseException as exc:  # every caller of the batch must hear of it
            for request in batch:
                request.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        finally:
            with self._cond:
                self._batches += 1
                self._requests += len(batch)
                self._images += len(images)
                self._last = len(images)
                self._busy_s += time.perf_counter() - started
        start = 0
        for request in batch:
            end = start + len(request.images)
            request.future.set_result(results[start:end])
            start = end
