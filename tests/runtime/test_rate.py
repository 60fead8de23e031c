"""The per-camera rate meter is read from other threads while the camera thread ticks."""

from __future__ import annotations

import threading
import time

from vigil.runtime.worker import _Rate


def test_reading_while_ticking_never_fails() -> None:
    rate = _Rate(window=5.0)
    stop = threading.Event()
    errors: list[BaseException] = []

    def tick() -> None:
        while not stop.is_set():
            rate.tick(time.monotonic())

    def read() -> None:
        try:
            while not stop.is_set():
                rate.value(time.monotonic())
        except BaseException as exc:  # the bug was "deque mutated during iteration"
            errors.append(exc)

    threads = [threading.Thread(target=tick), threading.Thread(target=read)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join()
    assert errors == []
    assert rate.value(time.monotonic()) > 0
