"""Segmenter on a real H.264+AAC stream: keyframe cuts, stream copy, hashes, broken clocks."""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from tests.record.conftest import T0
from vigil.errors import ConfigError
from vigil.record.layout import parse_segment_path, segment_path
from vigil.record.segmenter import Segmenter, SegmentInfo, TimestampFixer


@pytest.mark.parametrize(
    ("start", "index", "expected"),
    [
        (T0, 0, "cam1/2023-11-14/22/13.20.mp4"),
        (T0 + 0.999, 0, "cam1/2023-11-14/22/13.20.mp4"),
        (T0 + 3600 * 2 - 1, 0, "cam1/2023-11-15/00/13.19.mp4"),
        (T0, 2, "cam1/2023-11-14/22/13.20-2.mp4"),
    ],
)
def test_layout(start: float, index: int, expected: str) -> None:
    path = segment_path(Path("/r"), "cam1", start, index=index)
    assert path == Path("/r") / expected
    assert parse_segment_path(path) == ("cam1", float(int(start)))


@pytest.mark.parametrize("camera", ["", "../etc", "a/b", ".hidden", "x" * 65, "a..b"])
def test_unsafe_camera_ids_are_refused(camera: str) -> None:
    with pytest.raises(ConfigError, match="camera id"):
        segment_path(Path("/r"), camera, T0)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ([0, 10, 20, 30], [0, 10, 20, 30]),  # clean
        ([0, 10, 10, 20, 30], [0, 10, 11, 20, 30]),  # a repeat is nudged, no drift
        ([0, 10, 20, 5, 15], [0, 10, 20, 30, 40]),  # backwards
        ([0, 10, 20, 10_000, 10_010], [0, 10, 20, 30, 40]),  # forward jump over max_jump
        ([0, 10, None, 30], [0, 10, 20, 30]),  # missing timestamp
    ],
)
def test_timestamp_fixer(raw: list[int | None], expected: list[int]) -> None:
    fixer = TimestampFixer(max_jump=1000)
    assert [fixer.fix(ts, ts, 10)[0] for ts in raw] == expected


def _packets(path: Path, kind: str) -> list[Any]:
    with av.open(str(path)) as c:
        stream = c.streams.video[0] if kind == "video" else c.streams.audio[0]
        return [(bytes(p), p.is_keyframe, p.dts) for p in c.demux(stream) if p.size]


def test_segments_are_ten_seconds_and_start_on_keyframes(segments35: list[SegmentInfo]) -> None:
    assert len(segments35) == 4
    durations = [s.duration for s in segments35]
    assert durations[:3] == pytest.approx([10.0] * 3, abs=0.1)
    assert sum(durations) == pytest.approx(35.0, abs=0.2)
    assert segments35[0].start == T0
    for prev, nxt in itertools.pairwise(segments35):
        assert nxt.start == pytest.approx(prev.end, abs=0.05)  # no gap, no overlap
    for seg in segments35:
        assert seg.has_audio
        video = _packets(seg.path, "video")
        assert video[0][1], f"{seg.path} does not start with a keyframe"
        assert video[0][2] == 0, "each segment's timeline starts at 0"


def test_segments_are_playable(segments35: list[SegmentInfo]) -> None:
    total = 0
    for seg in segments35:
        with av.open(str(seg.path)) as c:
            frames = list(c.decode(video=0))
            assert all(f.width == 320 for f in frames)
            total += len(frames)
            pts = [f.pts for f in frames]
            assert np.all(np.diff(pts) > 0)
    assert total == 35 * 25


def test_segments_are_stream_copies(stream35: Path, segments35: list[SegmentInfo]) -> None:
    for kind in ("video", "audio"):
        original = [p[0] for p in _packets(stream35, kind)]
        copied = [p[0] for seg in segments35 for p in _packets(seg.path, kind)]
        if kind == "audio":  # audio is cut with video: nothing lost, nothing added
            assert copied == original[-len(copied) :] or copied == original[: len(copied)]
            assert len(copied) >= len(original) - 2
        else:
            assert copied == original, "video packets must be byte-identical (no re-encode)"
    with av.open(str(stream35)) as a, av.open(str(segments35[0].path)) as b:
        assert a.streams.video[0].codec_context.extradata == (
            b.streams.video[0].codec_context.extradata
        )
        assert a.streams.video[0].codec_context.profile == b.streams.video[0].codec_context.profile


def test_hashes_and_sizes_match_files(segments35: list[SegmentInfo]) -> None:
    for seg in segments35:
        assert seg.size == seg.path.stat().st_size
        assert seg.sha256 == hashlib.sha256(seg.path.read_bytes()).hexdigest()
        assert not list(seg.path.parent.glob(".*partial")), "no partial file left behind"


def _feed(stream35: Path, root: Path, mangle: Any, **kwargs: Any) -> Segmenter:
    segmenter = Segmenter("cam1", root, clock=lambda: T0, **kwargs)
    with av.open(str(stream35)) as inp:
        segmenter.set_streams(inp.streams.video[0], inp.streams.audio[0])
        for i, packet in enumerate(inp.demux()):
            if packet.size:
                mangle(i, packet)
            segmenter.write(packet)
    segmenter.close()
    return segmenter


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param("jump_back", id="clock-jumps-back-100s"),
        pytest.param("repeat", id="dts-repeats"),
        pytest.param("jump_forward", id="clock-jumps-forward-1h"),
    ],
)
def test_broken_timestamps_give_monotonic_playable_segments(
    stream35: Path, tmp_path: Path, mangle: str
) -> None:
    last: dict[int, tuple[int, int]] = {}

    def broken(i: int, packet: Any) -> None:
        tb = packet.time_base
        shift = {"jump_back": -int(100 / tb), "jump_forward": int(3600 / tb)}.get(mangle, 0)
        if mangle == "repeat" and i % 7 == 3 and packet.stream.index in last:
            packet.dts, packet.pts = last[packet.stream.index]
        elif shift and i > 900:
            packet.dts, packet.pts = packet.dts + shift, packet.pts + shift
        last[packet.stream.index] = (packet.dts, packet.pts)

    segs = _feed(stream35, tmp_path, broken).segments
    assert sum(s.duration for s in segs) == pytest.approx(35.0, abs=0.5)
    frames = 0
    for seg in segs:
        with av.open(str(seg.path)) as c:
            dts = [p.dts for p in c.demux(video=0) if p.size]
            assert np.all(np.diff(dts) > 0), f"{seg.path} dts not monotonic"
        with av.open(str(seg.path)) as c:
            frames += sum(1 for _ in c.decode(video=0))
    assert frames == 35 * 25


def test_pre_roll_and_post_roll_spans(stream35: Path, tmp_path: Path) -> None:
    """Activity 12.0-14.0 s with 3 s pre-roll: one recording from the keyframe <= 9 s."""
    segmenter = Segmenter("cam1", tmp_path, pre_roll=3.0, clock=lambda: T0)
    with av.open(str(stream35)) as inp:
        segmenter.set_streams(inp.streams.video[0], inp.streams.audio[0])
        for packet in inp.demux():
            when = segmenter.time_of(packet)
            post_roll_end = T0 + 14.0 + 2.0
            active = when is not None and T0 + 12.0 <= when <= post_roll_end
            segmenter.write(packet, record=active)
    segmenter.close()
    assert len(segmenter.segments) == 1
    seg = segmenter.segments[0]
    assert seg.start == pytest.approx(T0 + 9.0, abs=0.05)  # keyframes every 1 s
    assert seg.end == pytest.approx(T0 + 16.0, abs=0.1)
    with av.open(str(seg.path)) as c:
        assert next(iter(c.demux(video=0))).is_keyframe
    with av.open(str(seg.path)) as c:
        assert sum(1 for _ in c.decode(video=0)) == pytest.approx(7 * 25, abs=2)


def test_no_segment_without_activity(stream35: Path, tmp_path: Path) -> None:
    segmenter = Segmenter("cam1", tmp_path, pre_roll=5.0, clock=lambda: T0)
    with av.open(str(stream35)) as inp:
        segmenter.set_streams(inp.streams.video[0], inp.streams.audio[0])
        for packet in inp.demux():
            segmenter.write(packet, record=False)
    segmenter.close()
    assert segmenter.segments == []
    assert not list(tmp_path.rglob("*.mp4*"))
