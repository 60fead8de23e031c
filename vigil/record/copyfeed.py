"""``CopyFeed``: a camera's recorded H.264 muxed once into fragmented MP4, read by sequence number.

A granted unredacted live view is the camera's own H.264, copied (``vigil.api.livevideo``
``StreamCopy``). The feed is what it reads, wherever the camera's recorder runs: in the API's
process (``AppState`` wraps the recorder's ``PacketTap``) or in a camera actor on a cluster
node (``vigil.cluster.camera``), where the API pulls it with one actor call per batch. Muxing
on the recorder's side keeps the API a relay of bytes: no codec parameters need to cross
processes, and one mux serves every viewer of the camera.

The feed's thread reads its own ``Subscription`` of the tap and muxes each packet with a
``CopyFragmenter``; what comes out is numbered ``CopyChunk``s, kept in a bounded ring
(``KEEP_BYTES``): init segments (``init``) and fragments of one frame each (``key`` when one
starts with a keyframe). ``read(after, timeout)`` returns the chunks numbered above ``after``,
waiting up to ``timeout`` s for one (a long poll: one call per frame or less, and no polling
delay). A reader that is new (``after`` < 0) or fell behind what the ring holds gets the
latest init segment and the current GOP from its keyframe, so it starts at once.

A camera reconnect (the recorder's next ``TapSession``), or new parameter sets in band (a
resolution change), does not end the feed: a new ``CopyFragmenter`` starts at the next
keyframe, its init segment goes out as the next chunk, and its timestamps continue where the
previous stream's ended, so a Media Source Extensions player appends the new init segment to
the same buffer and plays on (``vigil/web/static/js/mse.js``). A new stream the browser could
not take (not H.264) ends the feed: ``problem`` says why, and the view is re-encoded when the
player reconnects.

Nothing runs while nobody reads: the thread starts at the first ``read`` and stops (and
unsubscribes) when its last reader ``release``s it, or ``IDLE_S`` after the last read (a
reader that went away without a word, e.g. with its API process). A feed restarted after
that is a new ``feed`` id (its clock starts again), which ends a reader still holding the
old one.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

import av

from vigil.media.h264 import CopyFragmenter, annexb_units, h264_parameter_sets
from vigil.record.segmenter import MAX_JUMP_SECONDS, TimestampFixer
from vigil.record.tap import PacketTap, Subscription, TapPacket, TapSession

log = logging.getLogger(__name__)

#: Bytes of chunks the ring keeps (at least the current GOP, for readers that join).
KEEP_BYTES = 8 * 1024 * 1024
#: The feed's thread stops this long after the last ``read``.
IDLE_S = 15.0
#: The longest a ``read`` waits for a chunk (a remote reader's call stays short).
MAX_WAIT_S = 2.0
#: A feed that failed says so (``problem``) this long; then a copy is tried again.
RETRY_S = 60.0


@dataclass(frozen=True, slots=True)
class CopyChunk:
    """One numbered piece of the feed: an init segment (``init``) or a fragment."""

    seq: int
    data: bytes
    key: bool = False
    init: bool = False


@dataclass(frozen=True, slots=True)
class CopyBatch:
    """One ``read``'s answer: the ``chunks`` in order, ``last`` (the ``after`` of the next
    read), the ``feed`` that made them, and ``problem`` when the feed cannot copy (any more):
    why, in words (the view must be re-encoded). ``waiting``: the problem is that there is
    no feed yet (its recorder is starting, e.g. on the node a camera actor failed over to):
    read again."""

    feed: str
    chunks: tuple[CopyChunk, ...]
    last: int
    problem: str | None = None
    waiting: bool = False


class CopyReader(Protocol):
    """What ``StreamCopy`` reads: a ``CopyFeed`` here, or a camera actor's on a node."""

    def problem(self) -> str | None:
        """Why the camera's view cannot be stream-copied now (None: it can)."""
        ...

    def read(self, after: int, timeout: float, reader: str = "") -> CopyBatch:
        """The chunks after ``after`` (waiting up to ``timeout`` s for one), for ``reader``
        (an id: the feed runs while one of its readers reads)."""
        ...

    def release(self, reader: str) -> None:
        """``reader`` reads no more (the feed stops when it was the last)."""
        ...


def tap_problem(session: TapSession | None) -> str | None:
    """Why a tap's current connection cannot be copied (None: it is H.264 MP4 can hold)."""
    if session is None:
        return "the camera's recording stream is not connected now: re-encoded"
    if session.codec != "h264" or session.template is None:
        return (f"the camera sends {session.codec}, and live stream copy is for "
                "H.264 (what browsers' Media Source Extensions play): re-encoded")  # fmt: skip
    return None


def _sps(data: bytes) -> bytes:
    """The in-band SPS of an Annex B keyframe (b"" when none: its parameters are out of band)."""
    return b"".join(u for u in annexb_units(data) if u[0] & 0x1F == 7)


def _picture_size(keyframe: bytes) -> tuple[int, int] | None:
    """The picture size of an Annex B keyframe with its parameter sets (one decode: this
    happens only when a camera changes its parameters), None when it does not decode."""
    try:
        context = av.CodecContext.create("h264", "r")
        frames = [*context.decode(av.Packet(keyframe)), *context.decode(None)]
    except av.error.FFmpegError:
        return None
    return (int(frames[0].width), int(frames[0].height)) if frames else None


class _Muxer:
    """One stream's ``CopyFragmenter``, its timestamps continuing from ``start`` seconds."""

    def __init__(self, packet: TapPacket, start: float) -> None:
        session = packet.session
        self.session = session
        self.sps = _sps(packet.data)
        known = bytes(session.template.codec_context.extradata or b"")
        # New parameter sets in band (a resolution change): the template's are the old ones.
        size = _picture_size(packet.data) if self.sps and self.sps not in known else None
        self.fragmenter = CopyFragmenter(session.template, size=size, start=start,
                                         extradata=h264_parameter_sets(packet.data))  # fmt: skip
        self.fixer = TimestampFixer(max(1, int(MAX_JUMP_SECONDS / session.time_base)))
        self.time_base: Fraction = session.time_base
        self._start = start
        self._base: int | None = None
        self._last: int | None = None
        self._step = 1
        #: Where this stream ends now, in seconds of the feed's clock.
        self.end = start
        #: Whether its init segment went into the feed.
        self.announced = False

    def write(self, packet: TapPacket) -> list[tuple[bytes, bool]]:
        dts, pts = self.fixer.fix(packet.dts, packet.pts, packet.duration)
        if self._base is None:
            self._base = dts  # the muxer's clock starts here; ``start`` moves it on
        if self._last is not None and dts > self._last:
            self._step = dts - self._last
        self._last = dts
        step = packet.duration if packet.duration > 0 else self._step
        self.end = max(self.end, self._start + float((dts - self._base + step) * self.time_base))
        fragments = self.fragmenter.write(packet.data, pts - self._base, dts - self._base,
                                          self.time_base, key=packet.key)  # fmt: skip
        return [(f.data, f.key) for f in fragments]

    def close(self) -> None:
        self.fragmenter.close()


class CopyFeed:
    """The camera's tapped packets as numbered fMP4 chunks (see the module docstring)."""

    def __init__(self, tap: PacketTap, *, idle_s: float = IDLE_S,
                 keep_bytes: int = KEEP_BYTES) -> None:  # fmt: skip
        self.tap = tap
        self.camera = tap.camera
        self.idle_s = idle_s
        self.keep_bytes = keep_bytes
        self._ready = threading.Condition(threading.Lock())
        self._chunks: deque[CopyChunk] = deque()
        self._bytes = 0
        self._init: CopyChunk | None = None
        self._seq = 0
        self._thread: threading.Thread | None = None
        #: Each reader's last read (monotonic s).
        self._readers: dict[str, float] = {}
        self._failed: str | None = None
        self._failed_at = -RETRY_S
        self.id = uuid.uuid4().hex
        #: Streams muxed (1, then one more at each reconnect or parameter change).
        self.streams = 0

    # -- readers (any thread) -------------------------------------------------------------------

    def problem(self) -> str | None:
        # A failure holds for ``RETRY_S``: the next views are re-encoded, then a copy is
        # tried again (the camera may send what can be copied by then).
        with self._ready:
            failed = self._failed if time.monotonic() - self._failed_at < RETRY_S else None
        return failed or tap_problem(self.tap.session)

    def read(self, after: int, timeout: float, reader: str = "") -> CopyBatch:
        """The chunks numbered above ``after`` (see the module docstring)."""
        deadline = time.monotonic() + max(0.0, min(timeout, MAX_WAIT_S))
        with self._ready:
            self._wake_up(reader)
            while self._seq <= after and self._failed is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._ready.wait(left)
            if self._failed is not None:
                return CopyBatch(self.id, (), self._seq, self._failed)
            return CopyBatch(self.id, self._after(after), self._seq)

    def release(self, reader: str) -> None:
        with self._ready:
            self._readers.pop(reader, None)

    def _wake_up(self, reader: str) -> None:
        """Note the read; start the thread when it is not running (under the lock)."""
        self._readers[reader] = time.monotonic()
        if self._thread is not None:
            return
        if self._chunks or self._seq:  # a restart after idling: a new clock, a new feed
            self.id = uuid.uuid4().hex
            self._chunks.clear()
            self._bytes, self._init = 0, None
        self._failed = None
        self._thread = threading.Thread(target=self._guarded, args=(self.tap.subscribe(),),
                                        name=f"copy-{self.camera}", daemon=True)  # fmt: skip
        self._thread.start()

    def _after(self, after: int) -> tuple[CopyChunk, ...]:
        chunks = self._chunks
        if after >= 0 and chunks and chunks[0].seq <= after + 1:
            return tuple(c for c in chunks if c.seq > after)
        # New, or fell behind the ring: the latest init segment and the current GOP.
        if self._init is None:
            return ()
        gop: list[CopyChunk] = []
        for chunk in reversed(chunks):
            if chunk.init:
                break
            gop.append(chunk)
            if chunk.key:
                break
        else:
            gop = []
        if gop and not gop[-1].key:
            gop = []  # the GOP's keyframe was dropped from the ring: the next keyframe
        return (self._init, *reversed(gop))

    # -- the feed's thread ------------------------------------------------------------------

    def _guarded(self, subscription: Subscription) -> None:
        muxer: _Muxer | None = None
        try:
            muxer = self._run(subscription)
        except Exception as exc:  # this feed ends; the recording goes on
            log.exception("live stream copy of %s failed", self.camera)
            self._fail(f"the stream copy failed ({type(exc).__name__}: {exc}): re-encoded")
        finally:
            subscription.close()
            if muxer is not None:
                muxer.close()
            with self._ready:
                if self._thread is threading.current_thread():
                    self._thread = None

    def _idle(self) -> bool:
        """Whether every reader released the feed or read nothing for ``idle_s`` (one that
        went away without a word): the thread ends (decided under the lock, so a read
        meanwhile starts a new one)."""
        with self._ready:
            now = time.monotonic()
            for reader, last in list(self._readers.items()):
                if now - last > self.idle_s:
                    del self._readers[reader]
            if self._readers:
                return False
            self._thread = None
            return True

    def _run(self, subscription: Subscription) -> _Muxer | None:
        muxer: _Muxer | None = None
        end = 0.0
        while not self._idle():
            packet = subscription.get(0.25)
            if packet is None:
                continue
            if muxer is not None and self._restarts(muxer, packet):
                if not packet.key:
                    continue  # the new stream starts at its keyframe
                end = muxer.end
                muxer.close()
                muxer = None
            if muxer is None:
                if not packet.key:
                    continue  # a stream starts at a keyframe
                problem = tap_problem(packet.session)
                if problem is not None:
                    self._fail(problem)
                    return None
                muxer = _Muxer(packet, end)
                self.streams += 1
                if self.streams > 1:
                    log.info("live stream copy of %s goes on with the camera's new stream",
                             self.camera)  # fmt: skip
            fragments = muxer.write(packet)
            init = muxer.fragmenter.init
            with self._ready:
                if init is not None and not muxer.announced:
                    muxer.announced = True
                    self._add(init, key=False, init=True)
                for data, key in fragments:
                    self._add(data, key=key, init=False)
                if fragments:
                    self._ready.notify_all()
        return muxer

    def _fail(self, problem: str) -> None:
        """End the feed's readers with ``problem`` (their views end; the next are re-encoded)."""
        with self._ready:
            self._failed, self._failed_at = problem, time.monotonic()
            self._ready.notify_all()

    def _restarts(self, muxer: _Muxer, packet: TapPacket) -> bool:
        """Whether ``packet`` is of another stream than ``muxer``'s: the recorder reconnected
        (a new session), or a keyframe brings other parameter sets."""
        if packet.session is not muxer.session:
            return True
        if packet.key:
            sps = _sps(packet.data)
            return bool(sps and muxer.sps and sps != muxer.sps)
        return False

    def _add(self, data: bytes, *, key: bool, init: bool) -> None:
        """Number and keep one chunk (under the lock)."""
        self._seq += 1
        chunk = CopyChunk(self._seq, data, key, init)
        if init:
            self._init = chunk
        self._chunks.append(chunk)
        self._bytes += len(data)
        while self._bytes > self.keep_bytes and len(self._chunks) > 1:
            self._bytes -= len(self._chunks.popleft().data)


__all__ = ["CopyBatch", "CopyChunk", "CopyFeed", "CopyReader", "tap_problem"]
