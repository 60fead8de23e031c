"""``MotionSpans``: motion times merged into spans, bounded, queried by overlap."""

from __future__ import annotations

from vigil.record.motion import MERGE_GAP_S, MotionSpans


def test_close_times_merge_and_far_ones_start_a_span() -> None:
    spans = MotionSpans()
    for t in (100.0, 100.2, 101.0, 101.0 + MERGE_GAP_S):
        spans.note(t)
    spans.note(110.0)
    assert spans.overlapping(0, 1e9) == [(100.0, 101.0 + MERGE_GAP_S), (110.0, 110.0)]


def test_overlap_queries_of_segments() -> None:
    spans = MotionSpans()
    spans.note(105.0)
    spans.note(106.0)
    assert spans.any(100.0, 110.0)
    assert spans.any(106.0, 116.0)  # touches the end
    assert not spans.any(90.0, 104.9)
    assert not spans.any(106.1, 120.0)


def test_old_spans_are_forgotten_and_the_count_is_bounded() -> None:
    spans = MotionSpans(keep_s=60.0, max_spans=3)
    spans.note(0.0)
    spans.note(100.0)
    assert spans.overlapping(-1, 1e9) == [(100.0, 100.0)]  # 0.0 is older than keep_s
    for t in (110.0, 120.0, 130.0, 140.0):
        spans.note(t)
    assert [a for a, _ in spans.overlapping(-1, 1e9)] == [120.0, 130.0, 140.0]
