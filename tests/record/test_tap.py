"""``PacketTap`` driven as the recorder drives it, with the real packets of a shared clip
(H.264 Main, a keyframe every 10 packets): bounded queues that skip to the next keyframe,
the current GOP for a new subscriber once the tap was armed, a session per connection."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import pytest

from vigil.record.tap import PacketTap, TapPacket

CLIP = "one-by-one-person-detection.mp4"


@pytest.fixture
def packets(clips_dir: Path) -> Iterator[tuple[Any, list[Any]]]:
    with av.open(str(clips_dir / CLIP)) as box:
        video = box.streams.video[0]
        yield video, [p for p in box.demux(video) if p.size][:80]


def drain(subscription: Any) -> list[TapPacket]:
    out = []
    while (packet := subscription.get(0.0)) is not None:
        out.append(packet)
    return out


def test_the_first_subscriber_starts_at_the_next_keyframe_later_ones_at_once(
    packets: tuple[Any, list[Any]],
) -> None:
    video, demuxed = packets
    tap = PacketTap("door")
    tap.start(video)
    for packet in demuxed[:15]:  # a keyframe at 0 and 10: nobody watches, nothing is kept
        tap.publish(packet)
    first = tap.subscribe()
    assert first.pending() == 0
    for packet in demuxed[15:25]:
        tap.publish(packet)
    got = drain(first)
    assert got, "the subscriber receives"
    assert bytes(demuxed[15]) == got[0].data  # from its subscription on, not before
    for packet in demuxed[25:35]:  # keyframes at 20 and 30: the GOP from 30 is kept
        tap.publish(packet)
    second = tap.subscribe()
    kept = drain(second)
    assert kept[0].key
    assert [p.data for p in kept] == [bytes(p) for p in demuxed[30:35]]
    assert len({p.session.number for p in got + kept}) == 1


def test_a_subscriber_that_does_not_read_is_bounded_and_resumes_at_a_keyframe(
    packets: tuple[Any, list[Any]],
) -> None:
    video, demuxed = packets
    tap = PacketTap("door")
    tap.start(video)
    slow = tap.subscribe(limit=6)
    for packet in demuxed[:53]:
        tap.publish(packet)
        assert slow.pending() <= 6
    assert slow.lagging or slow.dropped
    got = drain(slow)
    assert got[0].key  # after what it missed: a keyframe, never the middle of a GOP
    assert slow.dropped == 53 - len(got)
    assert tap.packets == 53


def test_a_full_queue_meeting_a_keyframe_keeps_it(packets: tuple[Any, list[Any]]) -> None:
    video, demuxed = packets
    tap = PacketTap("door")
    tap.start(video)
    slow = tap.subscribe(limit=10)
    for packet in demuxed[:11]:  # ten packets fill it; the eleventh is the next keyframe
        tap.publish(packet)
    got = drain(slow)
    assert [p.data for p in got] == [bytes(demuxed[10])]
    assert slow.dropped == 10


def test_a_new_connection_is_a_new_session_and_closing_unsubscribes(
    packets: tuple[Any, list[Any]],
) -> None:
    video, demuxed = packets
    tap = PacketTap("door")
    tap.start(video)
    sub = tap.subscribe()
    tap.publish(demuxed[0])
    tap.end()
    tap.publish(demuxed[1])  # between connections: nothing
    tap.start(video)
    tap.publish(demuxed[10])
    got = drain(sub)
    assert len(got) == 2
    assert got[0].session is not got[1].session
    assert got[1].session.codec == "h264"
    assert got[1].session.template is not None
    sub.close()
    assert tap.subscribers() == 0
    tap.publish(demuxed[11])
    assert sub.get(0.0) is None
