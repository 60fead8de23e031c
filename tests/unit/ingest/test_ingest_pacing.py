"""``Pacer``: media time released at wall-clock pace, on a fake clock."""

from __future__ import annotations

import threading

from vigil.ingest.pacing import Pacer


class FakeStop(threading.Event):
    """A stop event whose waits advance a fake clock instead of sleeping."""

    def __init__(self, clock: list[float]) -> None:
        super().__init__()
        self.clock = clock
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None
        self.waits.append(round(timeout, 6))
        self.clock[0] += timeout
        return self.is_set()


def make() -> tuple[Pacer, FakeStop]:
    now = [100.0]
    stop = FakeStop(now)
    return Pacer(stop, clock=lambda: now[0]), stop


def test_frames_wait_for_their_time() -> None:
    pacer, stop = make()
    for t in (0.0, 0.1, 0.2, 0.3):
        assert pacer.wait(t)
    assert stop.waits == [0.1, 0.1, 0.1]


def test_a_reader_far_behind_is_re_anchored_not_bursted() -> None:
    pacer, stop = make()
    assert pacer.wait(0.0)
    stop.clock[0] += 5.0  # the consumer stalled for 5 s
    assert pacer.wait(0.1)  # due long ago: released at once and the clock re-anchored here
    assert pacer.wait(0.2)
    assert stop.waits == [0.1]


def test_restart_makes_the_next_timestamp_due_at_once() -> None:
    pacer, stop = make()
    assert pacer.wait(0.0)
    assert pacer.wait(0.5)
    pacer.restart()
    assert pacer.wait(0.0)  # a reopened file starts its clock again
    assert stop.waits == [0.5]


def test_a_set_stop_ends_the_wait() -> None:
    pacer, stop = make()
    assert pacer.wait(0.0)
    stop.set()
    assert not pacer.wait(1.0)
