"""``PacketTap``: a recording stream's compressed video packets, fanned out to live viewers.

The recorder already demuxes the camera's own encoded video (never decoding it); a granted
unredacted live view can send those packets as they are (``vigil.api.livevideo``), with no
encoder. The tap sits in the recorder's loop: ``start(video)`` at each connection,
``publish(packet)`` for each demuxed video packet before the segmenter touches it (the
segmenter rewrites its timestamps), ``end()`` when the connection ends.

The recorder must never wait for a viewer. ``publish`` takes a lock only to copy the
packet's bytes into each subscriber's bounded queue (``Subscription``, ``QUEUE_PACKETS``); a
subscriber whose queue is full is *lagging*: its queue is emptied and it gets nothing more
until the next keyframe, since a video stream cannot skip single packets. Nothing is copied
before the first subscriber: a camera nobody watches unredacted costs nothing. From then on
the tap keeps the current GOP (the packets since the last keyframe, at most ``GOP_BYTES``)
even between subscribers, and a new one gets it first, so that it starts at once at a
keyframe instead of waiting up to one GOP for the next (only the very first waits). Every
fault inside the tap is logged and swallowed: the recording goes on.

Each connection is a ``TapSession``: the codec, and a private copy of the stream's codec
parameters (``template``, an output stream of a container that is never written) from which
a consumer builds its own output stream in its own thread; the recorder's input container
(closed at each reconnect) is never shared.
"""

from __future__ import annotations

import io
import itertools
import logging
import threading
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av

log = logging.getLogger(__name__)

#: Packets a subscriber may have waiting (about 4 s at 30 fps) before it is lagging.
QUEUE_PACKETS = 120
#: The current GOP is kept for new subscribers up to this many bytes (a long GOP of a high
#: bit-rate main stream is not kept: its subscriber waits for the next keyframe).
GOP_BYTES = 8 * 1024 * 1024

_sessions = itertools.count(1)


@dataclass(frozen=True, slots=True, eq=False)
class TapSession:
    """One connection of the recorder: ``codec`` (FFmpeg's decoder name, ``h264``, ``hevc``),
    ``size`` and ``time_base`` of the video, ``template`` (see the module docstring; None
    when the codec cannot go into MP4; ``holder`` is its container, kept alive with it) and
    ``number`` (new at each connection)."""

    number: int
    codec: str
    size: tuple[int, int]
    time_base: Fraction
    template: Any
    holder: Any = None

    @classmethod
    def of(cls, video: Any) -> TapSession:
        """A session for the input stream ``video`` (called in the recorder's thread)."""
        template = holder = None
        try:
            holder = av.open(io.BytesIO(), "w", format="mp4")
            template = holder.add_stream_from_template(video)
        except (av.error.FFmpegError, ValueError) as exc:
            log.info("%s video cannot be tapped for stream copy: %s",
                     video.codec_context.name, exc)  # fmt: skip
            template = None
        ctx = video.codec_context
        return cls(next(_sessions), str(ctx.name), (int(ctx.width), int(ctx.height)),
                   Fraction(video.time_base), template, holder)  # fmt: skip


@dataclass(frozen=True, slots=True)
class TapPacket:
    """One compressed video packet as demuxed (raw timestamps in ``session.time_base``)."""

    session: TapSession
    data: bytes
    pts: int | None
    dts: int | None
    duration: int
    key: bool


class Subscription:
    """One consumer's bounded queue of ``TapPacket`` (``get`` from any one thread)."""

    def __init__(self, tap: PacketTap, limit: int = QUEUE_PACKETS) -> None:
        self._tap = tap
        self.limit = limit
        self._queue: deque[TapPacket] = deque()
        self._ready = threading.Condition(threading.Lock())
        self.lagging = False
        #: Packets dropped because this subscriber was lagging.
        self.dropped = 0
        self.closed = False

    def offer(self, packet: TapPacket) -> None:
        """From the recorder's thread: queue ``packet``, or drop it (see the module doc)."""
        with self._ready:
            if self.lagging and not packet.key:
                self.dropped += 1
                return
            if len(self._queue) >= self.limit:
                self.dropped += len(self._queue)
                self._queue.clear()
                self.lagging = True
                if not packet.key:
                    self.dropped += 1
                    return
            self.lagging = False
            self._queue.append(packet)
            self._ready.notify()

    def get(self, timeout: float) -> TapPacket | None:
        """The next packet, or None after ``timeout`` seconds without one (or when closed)."""
        with self._ready:
            if not self._queue and not self.closed:
                self._ready.wait(timeout)
            return self._queue.popleft() if self._queue else None

    def pending(self) -> int:
        with self._ready:
            return len(self._queue)

    def close(self) -> None:
        """Stop receiving (the tap forgets this subscriber)."""
        self._tap.unsubscribe(self)
        with self._ready:
            self.closed = True
            self._queue.clear()
            self._ready.notify_all()


class PacketTap:
    """The fan-out of one camera's recorded video packets (see the module docstring)."""

    def __init__(self, camera: str) -> None:
        self.camera = camera
        self._lock = threading.Lock()
        self._subscribers: list[Subscription] = []
        self._gop: list[TapPacket] = []
        self._gop_bytes = 0
        #: The current connection's session (None while the recorder is not connected).
        self.session: TapSession | None = None
        #: Packets published since start (all connections).
        self.packets = 0
        #: Set by the first subscriber: from then on the current GOP is kept.
        self._armed = False

    # -- the recorder's side (its thread only) --------------------------------------------------

    def start(self, video: Any) -> None:
        """A connection begins with the input stream ``video``."""
        try:
            session = TapSession.of(video)
        except Exception:  # the recording must not fail for the tap
            log.exception("%s: cannot tap the recording stream", self.camera)
            session = None
        with self._lock:
            self.session = session
            self._gop, self._gop_bytes = [], 0

    def publish(self, packet: Any) -> None:
        """One demuxed video packet of the current connection (before the segmenter)."""
        session = self.session
        if session is None or packet.size == 0:
            return
        self.packets += 1
        if not self._armed:  # read without the lock: at worst one packet is not kept
            return
        try:
            tapped = TapPacket(session, bytes(packet), packet.pts, packet.dts,
                               int(packet.duration or 0), bool(packet.is_keyframe))  # fmt: skip
        except Exception:
            log.exception("%s: cannot tap a packet", self.camera)
            return
        with self._lock:
            self._keep(tapped)
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            subscriber.offer(tapped)

    def end(self) -> None:
        """The connection ended: the next packets belong to a new session."""
        with self._lock:
            self.session = None
            self._gop, self._gop_bytes = [], 0

    # -- consumers ------------------------------------------------------------------------------

    def subscribe(self, limit: int = QUEUE_PACKETS) -> Subscription:
        """A new subscriber; its queue starts with the current GOP when it was kept."""
        subscription = Subscription(self, limit)
        with self._lock:
            self._armed = True
            if len(self._gop) <= limit:  # a longer one would not fit: the next keyframe
                for packet in self._gop:
                    subscription.offer(packet)
            self._subscribers.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            if subscription in self._subscribers:
                self._subscribers.remove(subscription)

    def subscribers(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def _keep(self, packet: TapPacket) -> None:
        """Keep ``packet`` in the current GOP (under the lock)."""
        if packet.key:
            self._gop, self._gop_bytes = [], 0
        elif not self._gop:
            return  # no keyframe yet: nothing a subscriber could start from
        if self._gop_bytes + len(packet.data) > GOP_BYTES:
            self._gop, self._gop_bytes = [], 0
            return
        self._gop.append(packet)
        self._gop_bytes += len(packet.data)


__all__ = ["GOP_BYTES", "QUEUE_PACKETS", "PacketTap", "Subscription", "TapPacket", "TapSession"]
