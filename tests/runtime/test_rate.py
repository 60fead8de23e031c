"""The per-camera rate meter is read from other threads while the camera thread ticks."""

from __future__ import annotations

import threading
import time

import pytest

from vigil.runtime.worker import _Rate


def test_reading_while_ticking_never_fails() -> None:
    rate = _Rate(window=5.0, min_span=0.0)  # ticked far faster than any camera
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


def test_a_rate_is_said_once_its_frames_span_a_second() -> None:
    """Just after a connection three frames 0.1 s apart are not a 20 fps camera."""
    rate = _Rate(window=5.0)
    for k in range(3):
        rate.tick(100.0 + 0.1 * k)
    assert rate.value(100.2) == 0.0
    for k in range(3, 12):
        rate.tick(100.0 + 0.1 * k)
    assert rate.value(101.1) == pytest.approx(10.0)
    assert rate.value(107.0) == 0.0  # none lately
