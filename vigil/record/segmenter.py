"""Stream-copy segmenter: packets in, ~10 s MP4 files out, never decoded or re-encoded.

Recording the main stream by remuxing costs almost nothing (no decode), which is where the
capacity of a recorder comes from. A segment starts at a video keyframe (so it plays on its
own) and is cut at the first keyframe after ``segment_seconds``; it is written under a hidden
``.partial`` name and renamed when complete, then hashed (SHA-256, streaming) and reported as
a ``SegmentInfo`` to ``on_segment`` (the store plugs in there, see ``SegmentSink``).

Cameras send broken timestamps (jumps after a clock change, repeats, none at all).
``TimestampFixer`` turns each stream's timestamps into a monotonic timeline first; each segment
then counts from 0 on that timeline, so MP4 players and the muxer see clean, increasing dts.

Pre-roll: when ``write(packet, record=False)`` the segmenter keeps the packets since the last
keyframe at or before ``pre_roll`` seconds ago, so the segment that starts when recording is
switched on begins up to one GOP before the pre-roll (never later).
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import av

from vigil import clock
from vigil.errors import StorageError
from vigil.paths import sha256_file
from vigil.record.layout import check_camera_id, segment_path

log = logging.getLogger(__name__)

#: A forward jump of more than this many seconds between two packets of one stream is a
#: broken timestamp, not a real gap (real gaps end the connection and start a new timeline).
MAX_JUMP_SECONDS = 5.0

#: How many times a finished segment is offered to ``on_segment`` before it is given up on.
MAX_REPORT_ATTEMPTS = 20

#: How many finished segments ``Segmenter.segments`` remembers.
KEEP_FINISHED = 100

#: Suffix of the hidden file a segment is written to (``.<MM.SS>.mp4.partial``).
PARTIAL_SUFFIX = ".partial"


#: Bytes of a keyframe searched for its parameter sets (they precede the picture data).
PARAMETER_SCAN_BYTES = 4096

#: NAL unit types that define a picture's size and coding, by codec: H.264's SPS; H.265's
#: VPS and SPS. PPS are left out: encoders may vary them without a new configuration.
_PARAMETER_NALS = {"h264": frozenset({7}), "hevc": frozenset({32, 33})}


def parameter_sets(packet: Any, codec: str) -> bytes | None:
    """The in-band parameter sets of an Annex B keyframe, concatenated; None when the codec
    is neither H.264 nor H.265, the packet is not Annex B (length-prefixed, as from MP4
    files: their parameters live in the container) or carries none."""
    wanted = _PARAMETER_NALS.get(codec)
    if wanted is None:
        return None
    data = memoryview(packet)[:PARAMETER_SCAN_BYTES].tobytes()
    if not (data.startswith(b"\x00\x00\x01") or data.startswith(b"\x00\x00\x00\x01")):
        return None
    found = []
    for unit in data.split(b"\x00\x00\x01")[1:]:
        if not unit:
            continue
        kind = unit[0] & 0x1F if codec == "h264" else (unit[0] >> 1) & 0x3F
        if kind in wanted:
            found.append(unit.rstrip(b"\x00"))
    return b"".join(found) or None


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """One finished segment file.

    ``start``/``end``: UTC seconds of its first and past its last packet; ``size`` in bytes;
    ``sha256`` hex digest of the whole file, computed after it was closed.
    """

    camera: str
    path: Path
    start: float
    end: float
    size: int
    sha256: str
    has_audio: bool

    @property
    def duration(self) -> float:
        return self.end - self.start


class SegmentSink(Protocol):
    """Where finished segments are reported (the store, a test list, a retention index)."""

    def add(self, segment: SegmentInfo) -> None: ...


def partial_path(path: Path) -> Path:
    """The hidden name a segment is written under until it is complete."""
    return path.with_name(f".{path.name}{PARTIAL_SUFFIX}")


def final_path(partial: Path) -> Path:
    """The segment file a ``partial_path`` belongs to (the inverse of ``partial_path``)."""
    name = partial.name
    if not (name.startswith(".") and name.endswith(PARTIAL_SUFFIX)):
        raise ValueError(f"{partial} is not a partial segment (.<name>{PARTIAL_SUFFIX})")
    return partial.with_name(name[1 : -len(PARTIAL_SUFFIX)])


class TimestampFixer:
    """Turns one stream's raw (dts, pts) into a monotonic timeline, in the stream's time base.

    A repeated dts (or one less than a packet back) becomes the previous dts + 1 tick, for
    that packet only. Larger backward steps, forward jumps over ``max_jump`` ticks and missing
    timestamps become one typical packet duration after the previous packet, and the offset
    that made it so is kept for the packets that follow: a camera whose clock jumped once is
    shifted once. ``pts - dts`` (B-frame reordering) is preserved, so pts >= dts holds.
    """

    def __init__(self, max_jump: int) -> None:
        self.max_jump = max_jump
        self._offset = 0
        self._last: int | None = None
        self._step = 1

    def fix(self, dts: int | None, pts: int | None, duration: int) -> tuple[int, int]:
        """``(dts, pts)`` on the monotonic timeline for a packet of ``duration`` ticks."""
        if duration > 0:
            self._step = duration
        raw = dts if dts is not None else pts
        if raw is None:  # no timestamp at all: the packet follows the last one
            fixed = (self._last + self._step) if self._last is not None else 0
            self._last = fixed
            return fixed, fixed
        reorder = max(0, pts - raw) if pts is not None else 0
        fixed = raw + self._offset
        if self._last is not None:
            delta = fixed - self._last
            if -self._step <= delta <= 0:
                # A repeat (or a reordering within one packet): nudge this packet only, so
                # a camera that repeats now and then does not drift ahead.
                fixed = self._last + 1
            elif delta <= 0 or delta > self.max_jump:
                self._offset += self._last + self._step - fixed
                fixed = self._last + self._step
            elif delta < self._step and duration <= 0:
                self._step = delta
        self._last = fixed
        return fixed, fixed + reorder


@dataclass(slots=True)
class _Held:
    """A packet with its timeline position: ``seconds`` since the timeline's first packet."""

    packet: Any
    is_video: bool
    dts: int
    pts: int
    seconds: float


class Segmenter:
    """Writes stream-copied MP4 segments of one camera under ``root/recordings``.

    Use: ``set_streams(video, audio)`` with the input container's streams (again after each
    reconnect: it ends the open segment and starts a new timeline anchored at ``clock()``),
    ``write(packet)`` for each demuxed packet of those streams, ``close()`` at shutdown.
    Single-threaded: call it from the thread that demuxes.
    """

    def __init__(
        self,
        camera_id: str,
        root: Path,
        *,
        segment_seconds: float = 10.0,
        pre_roll: float = 0.0,
        on_segment: Callable[[SegmentInfo], None] | None = None,
        clock: Callable[[], float] = clock.now,
    ) -> None:
        # Here, not at the top: the journal's sweep reads files as recovery does, and
        # recovery needs this module's names.
        from vigil.record.unindexed import UnindexedJournal

        if segment_seconds <= 0 or pre_roll < 0:
            raise ValueError("segment_seconds must be > 0 and pre_roll >= 0 seconds")
        self.camera = check_camera_id(camera_id)
        self.recordings = root / "recordings"
        #: The segments whose report failed, on disk (``vigil.record.unindexed``): a restart
        #: keeps them, and ``reindex`` takes those given up on.
        self.journal = UnindexedJournal(self.recordings / self.camera)
        self.segment_seconds = segment_seconds
        self.pre_roll = pre_roll
        self.on_segment = on_segment
        self._clock = clock
        self._video: Any = None
        self._audio: Any = None
        self._fixers: dict[int, TimestampFixer] = {}
        self._anchor = 0.0
        self._first: dict[int, int] = {}
        self._ring: deque[_Held] = deque()
        self._out: _OpenSegment | None = None
        self.last_time = 0.0
        #: The last ``KEEP_FINISHED`` finished segments, oldest first (a recorder runs for
        #: months: all of them would grow by one per segment for ever).
        self.segments: list[SegmentInfo] = []
        #: Finished segments whose ``on_segment`` report failed, retried at the next finish.
        self.unreported: list[SegmentInfo] = []
        #: Why the last report failed while some are unreported (None when all were).
        self.report_error: str | None = None
        self._report_failures: dict[Path, int] = {}
        self._parameters: bytes | None = None  # SPS (and VPS) of the last video keyframe

    # -- input ------------------------------------------------------------------------------

    def set_streams(
        self, video: Any, audio: Any | None = None, *, start: float | None = None
    ) -> None:
        """Record ``video`` (and ``audio``) from now on; ``start``: UTC time of the first packet.

        Ends any open segment: a new connection is a new timeline.
        """
        self.finish_segment()
        self._ring.clear()
        self._video, self._audio = video, audio
        self._fixers = {
            s.index: TimestampFixer(max(1, int(MAX_JUMP_SECONDS / s.time_base)))
            for s in (video, audio) if s is not None
        }  # fmt: skip
        self._first = {}
        self._parameters = None
        self._anchor = self._clock() if start is None else start

    def write(self, packet: Any, *, record: bool = True) -> None:
        """Take one packet of the current streams; ``record=False`` only keeps pre-roll.

        ``record`` is read on video packets only (audio follows the video's state, so the
        interleaving of the two never opens and closes segments back and forth). Packets of
        other streams and empty flush packets are ignored.
        """
        held = self._hold(packet)
        if held is None:
            return
        self.last_time = self._anchor + held.seconds
        if not held.is_video:  # video packets switch recording on and off; audio follows
            record = self._out is not None
        if not record:
            self.finish_segment()
            self._keep_pre_roll(held)
            return
        reconfigured = held.is_video and held.packet.is_keyframe and self._new_parameters(held)
        if self._out is None:
            self._start_with_pre_roll(held)
        elif (
            held.is_video
            and held.packet.is_keyframe
            and (held.seconds - self._out.first_seconds >= self.segment_seconds or reconfigured)
        ):
            self.finish_segment()
            self._open(held)
        if self._out is not None:
            self._out.write(held)

    def time_of(self, packet: Any) -> float | None:
        """UTC seconds of ``packet`` on the current timeline without consuming it (None if it
        has no timestamp)."""
        ts = packet.dts if packet.dts is not None else packet.pts
        first = self._first.get(packet.stream.index)
        if ts is None or first is None:
            return None
        return self._anchor + float((ts - first) * packet.time_base)

    # -- output -----------------------------------------------------------------------------

    def finish_segment(self) -> SegmentInfo | None:
        """Close the open segment (if any), hash it and report it; returns its info.

        Raises ``StorageError`` when the file cannot be completed (its partial file is then
        deleted). A report that fails (``on_segment`` raised: the database is full or down)
        does not lose the segment: it is retried with the next segments (``unreported``).
        """
        info = None
        if self._out is not None:
            out, self._out = self._out, None
            info = out.close()
            if info is not None:
                self.segments.append(info)
                if len(self.segments) > 2 * KEEP_FINISHED:
                    del self.segments[:-KEEP_FINISHED]
                self.unreported.append(info)
        self._report()
        return info

    @property
    def given_up(self) -> int:
        """Finished segments given up on after ``MAX_REPORT_ATTEMPTS`` failed reports (this
        run's or an earlier one's) and not indexed since: their files are on disk, unknown
        to the store, hence to retention and the API (``vigil_camera_segments_unindexed``);
        it goes down as ``reindex`` indexes them."""
        return self.journal.count

    def abort_segment(self) -> None:
        """Drop the open segment without reporting it (its file could not be written)."""
        out, self._out = self._out, None
        if out is not None:
            out.abort()

    def close(self) -> None:
        """Graceful shutdown: the open segment is finished and reported."""
        try:
            self.finish_segment()
        finally:
            self._ring.clear()

    def _report(self) -> None:
        """Hand the finished segments not yet reported to ``on_segment``, oldest first; one
        that fails stays for the next call (at most ``MAX_REPORT_ATTEMPTS`` times)."""
        if self.on_segment is None:
            self.unreported.clear()
            return
        kept: list[SegmentInfo] = []
        for info in self.unreported:
            try:
                self.on_segment(info)
            except Exception as exc:  # the store's problem must not stop the recording
                tries = self._report_failures.get(info.path, 0) + 1
                self._report_failures[info.path] = tries
                self.report_error = f"segment {info.path.name} not indexed: {exc}"
                if tries == 1:  # on disk at once: a stop while retrying must not lose it
                    self.journal.add(info)
                if tries < MAX_REPORT_ATTEMPTS:
                    kept.append(info)
                    # Once per segment: every retry of every waiting one would be n² lines.
                    log.log(logging.WARNING if tries == 1 else logging.DEBUG,
                            "%s: %s; retrying with the next segment", self.camera,
                            self.report_error)  # fmt: skip
                else:
                    log.error("%s: %s; gave up after %d attempts (the file stays on disk, "
                              "journaled: indexed once the store takes it)", self.camera,
                              self.report_error, tries)  # fmt: skip
                    self._report_failures.pop(info.path, None)
                    self.journal.give_up(info.path)
            else:
                if self._report_failures.pop(info.path, None) is not None:
                    self.journal.discard([info.path])
        self.unreported = kept
        if not kept:
            self.report_error = None

    # -- internals --------------------------------------------------------------------------

    def _new_parameters(self, held: _Held) -> bool:
        """Whether this keyframe carries other parameter sets (SPS) than the last one: the
        camera changed resolution or encoding, and an MP4 describes one configuration, so a
        segment must not span the change. Only in-band (Annex B) parameter sets are seen."""
        found = parameter_sets(held.packet, self._video.codec_context.name)
        if found is None:
            return False
        changed = self._parameters is not None and found != self._parameters
        if changed:
            log.info("%s: the stream's parameter sets changed (new resolution or encoding); "
                     "starting a new segment", self.camera)  # fmt: skip
        self._parameters = found
        return changed

    def _hold(self, packet: Any) -> _Held | None:
        stream = packet.stream
        if stream is None or stream.index not in self._fixers or packet.size == 0:
            return None
        if stream is not self._video and stream is not self._audio:
            return None
        dts, pts = self._fixers[stream.index].fix(packet.dts, packet.pts, packet.duration or 0)
        first = self._first.setdefault(stream.index, dts)
        seconds = float((dts - first) * stream.time_base)
        return _Held(packet, stream is self._video, dts, pts, seconds)

    def _keep_pre_roll(self, held: _Held) -> None:
        if self.pre_roll <= 0:
            return
        if not self._ring and not (held.is_video and held.packet.is_keyframe):
            return  # a ring always starts with a keyframe
        self._ring.append(held)
        if held.is_video and held.packet.is_keyframe:
            self._trim_ring(held.seconds - self.pre_roll)

    def _trim_ring(self, keep_from: float) -> None:
        """Drop whole GOPs while the next keyframe is still at or before ``keep_from``."""
        keys = [i for i, h in enumerate(self._ring) if h.is_video and h.packet.is_keyframe]
        cut = 0
        for i in keys:
            if self._ring[i].seconds <= keep_from:
                cut = i
        for _ in range(cut):
            self._ring.popleft()

    def _start_with_pre_roll(self, held: _Held) -> None:
        self._trim_ring(held.seconds - self.pre_roll)
        ring, self._ring = list(self._ring), deque()
        if ring:
            self._open(ring[0])
            assert self._out is not None
            for old in ring:
                self._out.write(old)
        elif held.is_video and held.packet.is_keyframe:
            self._open(held)

    def _open(self, first: _Held) -> None:
        start = self._anchor + first.seconds
        index = 0
        while (path := segment_path(self.recordings, self.camera, start, index=index)).exists():
            index += 1
        self._out = _OpenSegment(
            self.camera,
            path,
            start,
            first_seconds=first.seconds,
            video=self._video,
            audio=self._audio,
            first=self._first,
        )


class _OpenSegment:
    """One MP4 being written; timestamps count from the segment's first keyframe."""

    def __init__(
        self, camera: str, path: Path, start: float, *, first_seconds: float, video: Any,
        audio: Any | None, first: dict[int, int],
    ) -> None:  # fmt: skip
        self.camera, self.path, self.start = camera, path, start
        self.first_seconds = first_seconds
        self.partial = partial_path(path)
        self.file: BinaryIO | None = None
        self.container: Any = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Through a Python file, not a path: FFmpeg's own I/O keeps a write error (disk
            # full) to itself until close, so a whole segment would be lost before anyone
            # knew; a Python file raises it from the ``mux`` call whose data did not fit.
            self.file = self.partial.open("wb")
            self.container = av.open(self.file, "w", format="mp4")
            self.streams = {video.index: self.container.add_stream_from_template(video)}
            if audio is not None:
                self.streams[audio.index] = self.container.add_stream_from_template(audio)
        except (av.error.FFmpegError, OSError) as exc:
            self.abort()
            raise StorageError(f"cannot write segment {path} ({exc}); check the disk") from exc
        self.has_audio = audio is not None
        # The segment's zero, in each input stream's ticks on the fixed timeline.
        self.base = {
            index: first[index] + round(Fraction(first_seconds) / s.time_base)
            for index, s in ((video.index, video), *(((audio.index, audio),) if audio else ()))
            if index in first
        }
        self.last_dts: dict[int, int] = {}
        self.end_seconds = first_seconds

    def write(self, held: _Held) -> None:
        packet, index = held.packet, held.packet.stream.index
        base = self.base.setdefault(index, held.dts)
        dts = held.dts - base
        # Audio demuxed just after the cut may be stamped a little before it: clamp to stay
        # monotonic and non-negative (costs at most one interleaving window of skew).
        floor = self.last_dts.get(index, -1) + 1
        shift = max(0, floor - dts)
        packet.dts, packet.pts = dts + shift, held.pts - base + shift
        self.last_dts[index] = dts + shift
        duration = float((packet.duration or 0) * packet.time_base)
        self.end_seconds = max(self.end_seconds, held.seconds + duration)
        packet.stream = self.streams[index]
        try:
            self.container.mux(packet)
        except (av.error.FFmpegError, OSError) as exc:
            raise StorageError(f"cannot write segment {self.path} ({exc})") from exc

    def close(self) -> SegmentInfo | None:
        """Complete the file under its final name; None when no packet was written."""
        try:
            self.container.close()
            assert self.file is not None
            self.file.close()
        except (av.error.FFmpegError, OSError) as exc:
            self.abort()
            raise StorageError(f"cannot finish segment {self.path} ({exc})") from exc
        if not self.last_dts:  # nothing was written: no file
            self.partial.unlink(missing_ok=True)
            return None
        try:
            self.partial.replace(self.path)
            size, digest = self.path.stat().st_size, sha256_file(self.path)
        except OSError as exc:
            raise StorageError(f"cannot finish segment {self.path} ({exc})") from exc
        end = self.start + (self.end_seconds - self.first_seconds)
        return SegmentInfo(self.camera, self.path, self.start, end, size, digest, self.has_audio)

    def abort(self) -> None:
        """Give the segment up: close what is open (errors are expected here: the disk is
        full or gone) and delete the partial file, so no space is held by a broken file."""
        for closing in (self.container, self.file):
            if closing is not None:
                with contextlib.suppress(av.error.FFmpegError, OSError, ValueError):
                    closing.close()
        self.container = self.file = None
        with contextlib.suppress(OSError):
            self.partial.unlink(missing_ok=True)
