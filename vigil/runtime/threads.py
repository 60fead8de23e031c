"""``ThreadBackend``: every camera a ``CameraWorker`` thread of the main process.

The simplest ``CameraBackend`` (``vigil.runtime.backend``): the workers call the shared
detector, the sink and the recorders directly, and the handle of a camera is its worker. A
session that fails or crashes is retried with backoff by ``run_supervised``.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from vigil.config.models import ResolvedCamera
from vigil.ingest import Backoff
from vigil.runtime.backend import BackendHooks, BackendKind
from vigil.runtime.worker import CameraWorker, SourceFactory, default_source, run_supervised


class ThreadBackend:
    """Runs ``cameras`` in threads of this process (see the module docstring).

    ``source_factory``: how workers open their analysis stream (default: ``default_source``
    with ``stall_timeout``); ``backoff``: a fresh ``Backoff`` per camera for its retries.
    """

    def __init__(
        self, cameras: Sequence[ResolvedCamera], hooks: BackendHooks, *,
        source_factory: SourceFactory | None = None, stall_timeout: float = 10.0,
        backoff: Callable[[], Backoff] = Backoff,
    ) -> None:  # fmt: skip
        factory = source_factory or functools.partial(default_source, stall_timeout=stall_timeout)
        self._backoff = backoff
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.workers: dict[str, CameraWorker] = {}
        for camera in cameras:
            worker = CameraWorker(
                camera, hooks.detectors.get(camera.name), hooks.sink,
                counts=hooks.counts, on_counts=hooks.on_counts, on_online=hooks.on_online,
                recorder=hooks.recorders.get(camera.name), source_factory=factory,
            )  # fmt: skip
            worker.queue_depth = functools.partial(hooks.queue_depth, camera.name)
            self.workers[camera.name] = worker

    @property
    def kind(self) -> BackendKind:
        return "threads"

    @property
    def handles(self) -> Mapping[str, CameraWorker]:
        return self.workers

    def start(self) -> None:
        for name, worker in self.workers.items():
            args = (worker, self._stop, self._backoff())
            thread = threading.Thread(target=run_supervised, name=f"camera-{name}", args=args,
                                      daemon=True)  # fmt: skip
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for worker in self.workers.values():
            worker.stop()

    def close(self, timeout: float) -> None:
        """Wait for the camera threads; each closes its open events as its session ends."""
        if not self._stop.is_set():
            self.stop()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def pids(self) -> list[int]:
        return []
