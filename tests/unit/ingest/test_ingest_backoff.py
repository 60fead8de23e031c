"""Backoff: the delay sequence, its cap, jitter bounds, reset."""

from __future__ import annotations

import random

import pytest

from vigil.ingest import Backoff


def test_sequence_doubles_up_to_the_cap() -> None:
    backoff = Backoff(initial=0.5, factor=2, max=30, jitter=0)
    delays = [backoff.next() for _ in range(10)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]
    assert backoff.attempts == 10


def test_reset_starts_over() -> None:
    backoff = Backoff(initial=1, factor=3, max=100, jitter=0)
    assert [backoff.next() for _ in range(3)] == [1, 3, 9]
    backoff.reset()
    assert backoff.attempts == 0
    assert backoff.next() == 1


def test_jitter_stays_within_bounds_and_varies() -> None:
    backoff = Backoff(initial=1, factor=2, max=30, jitter=0.2, rng=random.Random(7))
    seen = []
    for attempt in range(12):
        delay = backoff.next()
        base = backoff.base_delay(attempt)
        assert base * 0.8 <= delay <= min(30.0, base * 1.2)
        assert delay <= 30.0
        seen.append(delay / base)
    assert len({round(r, 6) for r in seen}) > 5


def test_jitter_is_reproducible_with_a_seeded_rng() -> None:
    a = Backoff(jitter=0.3, rng=random.Random(1))
    b = Backoff(jitter=0.3, rng=random.Random(1))
    assert [a.next() for _ in range(8)] == [b.next() for _ in range(8)]


def test_delay_of_a_given_attempt_counts_nothing() -> None:
    backoff = Backoff(initial=1, factor=2, max=30, jitter=0)
    assert [backoff.delay(n) for n in (0, 3, 10)] == [1, 8, 30]
    assert backoff.attempts == 0
    a = Backoff(jitter=0.3, rng=random.Random(4))
    b = Backoff(jitter=0.3, rng=random.Random(4))
    assert [a.delay(n) for n in range(6)] == [b.next() for _ in range(6)]


def test_huge_attempt_counts_do_not_overflow() -> None:
    assert Backoff(jitter=0).base_delay(10_000) == 30.0


@pytest.mark.parametrize(
    ("initial", "factor", "maximum", "jitter"),
    [(0, 2, 30, 0.1), (1, 0.5, 30, 0.1), (10, 2, 5, 0.1), (1, 2, 30, 1.0), (1, 2, 30, -0.1)],
)
def test_rejects_nonsense(initial: float, factor: float, maximum: float, jitter: float) -> None:
    with pytest.raises(ValueError, match="Backoff needs"):
        Backoff(initial, factor, maximum, jitter)
