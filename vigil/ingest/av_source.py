"""Files and network streams decoded with PyAV (FFmpeg).

One class serves every input FFmpeg reads: files of any container (GIF included), ``rtsp://``,
``rtsps://``, ``http(s)://`` (HLS ``.m3u8`` too). Network sources reconnect with exponential
backoff and detect stalls; files end.

Costs drive the design: colour conversion of a full frame costs more than decoding it, so a
:class:`~vigil.types.Frame` carries only the luma plane (copied out of the decoded YUV frame,
no conversion) and keeps the decoded ``av`` frame to build BGR on demand, scaled and converted
in one ``reformat`` call by FFmpeg's scaler.

Every message and status names the source with its password masked.
"""

from __future__ import annotations

import heapq
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from types import TracebackType
from typing import Any, Self

import av
import av.error
import cv2
import numpy as np
from av.codec.hwaccel import HWAccel
from av.container import InputContainer
from av.video.frame import VideoFrame
from av.video.reformatter import VideoReformatter
from av.video.stream import VideoStream

from vigil import clock
from vigil.errors import SourceError
from vigil.ingest.backoff import Backoff
from vigil.ingest.base import (
    SourceInfo,
    SourceState,
    SourceStatus,
    StatusCallback,
    is_network_url,
    mask_credentials,
)
from vigil.ingest.hwaccel import hwaccel_for, split_options
from vigil.ingest.nal import avcc_length_size, h264_disposable
from vigil.ingest.pacing import Pacer
from vigil.types import BgrLoader, Frame, ImageArray, LumaLoader, RegionLoader

log = logging.getLogger(__name__)

#: Pixel formats whose first plane is an 8-bit luma plane (planar or semi-planar YUV, gray).
_LUMA_FORMATS = frozenset(
    {
        "yuv420p",
        "yuvj420p",
        "yuv422p",
        "yuvj422p",
        "yuv444p",
        "yuvj444p",
        "yuv440p",
        "yuvj440p",
        "yuv411p",
        "yuvj411p",
        "yuv410p",
        "yuva420p",
        "nv12",
        "nv21",
        "nv16",
        "gray",
    }
)

#: AVCOL_RANGE_JPEG: luma already spans 0..255.
_FULL_RANGE = 2

#: Fallback frame rate when a stream declares none (only used when frames lack pts too).
DEFAULT_FPS = 25.0


class _StallError(SourceError):
    """No frame within ``stall_timeout``: reported as ``stalled`` before reconnecting."""


def _limited_to_full_lut() -> ImageArray:
    """Lookup table from limited-range luma (16..235) to full range (0..255).

    Most camera H.264 is limited range; expanding it makes luma agree with the gray image of
    the BGR frame (and with GIF and MJPEG sources), so motion thresholds mean the same
    everywhere. A table lookup costs a fraction of a colour conversion.
    """
    levels = (np.arange(256, dtype=np.float32) - 16.0) * (255.0 / 219.0)
    return np.asarray(np.clip(np.rint(levels), 0, 255), dtype=np.uint8)


_LUT = _limited_to_full_lut()


ReformatterFactory = Callable[[], VideoReformatter]


def _fresh_reformatter() -> VideoReformatter:
    return VideoReformatter()


def extract_luma(
    frame: VideoFrame, reformatter: ReformatterFactory = _fresh_reformatter
) -> ImageArray:
    """The frame's luma as a contiguous ``(height, width)`` uint8 array, full range.

    For YUV formats the Y plane is copied out directly; planes carry line padding
    (``line_size >= width``), so rows are cut to ``width``. Other formats (GIF's ``pal8`` and
    ``bgra``, RGB) go through FFmpeg's scaler to ``gray``.
    """
    if frame.format.name not in _LUMA_FORMATS:
        gray = reformatter().reformat(frame, format="gray")
        return np.ascontiguousarray(gray.to_ndarray(), dtype=np.uint8)
    plane = frame.planes[0]
    rows = np.frombuffer(memoryview(plane), np.uint8, count=plane.line_size * frame.height)
    luma = rows.reshape(frame.height, plane.line_size)[:, : frame.width]
    full_range = frame.format.name.startswith("yuvj") or frame.format.name == "gray"
    # Both branches copy: the frame's buffer stays FFmpeg's, and the BGR loader reads it.
    if full_range or int(frame.color_range) == _FULL_RANGE:
        return luma.copy()
    # cv2.LUT reads the padded rows in place and writes a new contiguous array: one pass.
    return np.asarray(cv2.LUT(luma, _LUT), dtype=np.uint8)


def luma_loader(
    frame: VideoFrame, reformatter: ReformatterFactory = _fresh_reformatter
) -> LumaLoader:
    """A loader of ``frame``'s luma: full size (:func:`extract_luma`) or reduced to a size.

    Reduced, the decoded plane is averaged down where it lies (no full-size copy) and only the
    small result is mapped to full range: at 1080p that saves the full plane's lookup and copy,
    a fifth of the decoding's cost. Mapping after averaging differs from mapping first by
    rounding (mostly ±1 grey level, more only where limited-range luma under 16 is clipped).
    """

    def load(size: tuple[int, int] | None) -> ImageArray:
        if size is None or frame.format.name not in _LUMA_FORMATS:
            luma = extract_luma(frame, reformatter)
            if size is None or size == (frame.width, frame.height):
                return luma
            return np.asarray(cv2.resize(luma, size, interpolation=cv2.INTER_AREA), np.uint8)
        plane = frame.planes[0]
        rows = np.frombuffer(memoryview(plane), np.uint8, count=plane.line_size * frame.height)
        view = rows.reshape(frame.height, plane.line_size)[:, : frame.width]
        small = np.asarray(cv2.resize(view, size, interpolation=cv2.INTER_AREA), np.uint8)
        full_range = frame.format.name.startswith("yuvj") or frame.format.name == "gray"
        if full_range or int(frame.color_range) == _FULL_RANGE:
            return small
        return np.asarray(cv2.LUT(small, _LUT), dtype=np.uint8)

    return load


def bgr_loader(
    frame: VideoFrame, reformatter: ReformatterFactory = _fresh_reformatter
) -> BgrLoader:
    """A loader building the BGR image of ``frame``, scaled in the same ``reformat`` call.

    The closure keeps the decoded frame alive until the :class:`Frame` is dropped; that costs a
    reference, not a copy. ``reformatter`` supplies the FFmpeg scaler: pass one that is reused
    across frames, because setting up a *scaling* context costs about ten times the scaling
    itself (3.6 vs 0.4 ms for 768x432 -> 416x234 here); the plain conversion is cheap either
    way.
    """

    def load(size: tuple[int, int] | None) -> ImageArray:
        if size is None or size == (frame.width, frame.height):
            width, height = frame.width, frame.height
        else:
            width, height = size
        image = (
            reformatter()
            .reformat(frame, width=width, height=height, format="bgr24", interpolation="AREA")
            .to_ndarray()
        )
        return np.ascontiguousarray(image, dtype=np.uint8)

    return load


#: Planar 4:2:0 formats whose regions are converted alone (chroma at half size both ways).
_I420_FORMATS = frozenset({"yuv420p", "yuvj420p"})


def region_loader(
    frame: VideoFrame, reformatter: ReformatterFactory = _fresh_reformatter
) -> RegionLoader | None:
    """A loader converting only a region of ``frame`` to BGR, for planar 4:2:0 frames.

    The region is widened to even coordinates (a chroma sample covers 2 x 2 pixels), its
    planes are copied into a small frame with the same colour metadata, and FFmpeg's scaler
    converts that, exactly as it converts the full frame; the widening is cut off again.
    None for other formats (the caller slices the full conversion).
    """
    if frame.format.name not in _I420_FORMATS:
        return None

    def plane(index: int, rows: int) -> ImageArray:
        p = frame.planes[index]
        data = np.frombuffer(memoryview(p), np.uint8, count=p.line_size * rows)
        return data.reshape(rows, p.line_size)

    def load(region: tuple[int, int, int, int]) -> ImageArray:
        x1, y1, x2, y2 = region
        ex1, ey1 = x1 - x1 % 2, y1 - y1 % 2
        ex2, ey2 = min(frame.width, x2 + x2 % 2), min(frame.height, y2 + y2 % 2)
        if (ex2 - ex1) % 2 or (ey2 - ey1) % 2:  # an odd frame size at the edge
            return np.ascontiguousarray(bgr_loader(frame, reformatter)(None)[y1:y2, x1:x2])
        w, h = ex2 - ex1, ey2 - ey1
        luma = plane(0, frame.height)[ey1:ey2, ex1:ex2]
        rows = (frame.height + 1) // 2
        u = plane(1, rows)[ey1 // 2 : ey2 // 2, ex1 // 2 : ex2 // 2]
        v = plane(2, rows)[ey1 // 2 : ey2 // 2, ex1 // 2 : ex2 // 2]
        packed = np.concatenate([luma.ravel(), u.ravel(), v.ravel()]).reshape(h * 3 // 2, w)
        small = VideoFrame.from_ndarray(packed, format=frame.format.name)
        small.color_range, small.colorspace = frame.color_range, frame.colorspace
        image = reformatter().reformat(small, format="bgr24").to_ndarray()
        return np.ascontiguousarray(image[y1 - ey1 : y2 - ey1, x1 - ex1 : x2 - ex1])

    return load


class AvSource:
    """A video file or network stream, decoded by PyAV.

    Args:
        url: a file path or an FFmpeg URL (``rtsp://user:pass@host/path``, ``https://…m3u8``).
        camera_id: carried into every frame and status.
        live: whether frame times are wall-clock; default: True for network URLs.
        reconnect: reopen after errors, stalls and end of stream; default: ``live``.
            A file never needs it: it ends.
        backoff: delays between reconnection attempts (default ``Backoff()``: 0.5 s doubling
            up to 30 s, ±10 % jitter).
        stall_timeout: seconds without a decoded frame after which a live stream counts as
            stalled and is reopened; also FFmpeg's read timeout.
        open_timeout: seconds allowed to open the source (default ``stall_timeout``).
        max_attempts: reconnection attempts before giving up with ``SourceError``
            (default: retry for ever, what a camera recorder must do).
        options: FFmpeg demuxer options, e.g. ``{"rtsp_transport": "tcp"}``, plus the
            decoder's ``hwaccel`` (``cuda``: NVDEC) and ``hwaccel_device``
            (:mod:`vigil.ingest.hwaccel`); without them decoding is FFmpeg's software decoder,
            threaded, exactly as before.
        on_status: called with a :class:`SourceStatus` on every state change.
        realtime: deliver frames at the rate of their timestamps, as a camera would, instead
            of as fast as they decode (a file used as a camera; network streams come in real
            time anyway). Combine with ``live=True`` for wall-clock times and
            ``reconnect=True`` to loop a file.

    Frames: ``seq`` counts every decoded frame from 0 and keeps increasing across reconnects;
    ``pts`` is seconds since the first frame (stream time base; ``seq / fps`` where a frame
    has no pts); after a reconnect ``pts`` continues from the wall-clock time elapsed since
    the first frame (live) or from the last frame (otherwise), because the stream restarts
    its own clock; it never goes backwards. ``wall_time`` is
    ``time.time()`` at decode for live sources and ``start + pts`` for files.

    ``open()`` (and so the first ``frames()`` call) raises at once when the source cannot be
    opened: a wrong URL should fail loudly, not retry for ever. Reconnection starts only once a
    source has worked; a supervisor that wants to wait for a camera retries ``open()`` itself.

    ``close()`` may be called from another thread; the decoding thread then stops at the next
    frame, or within ``stall_timeout`` when it is waiting for data.

    ``skip``: set it to a function of a frame's pts (seconds) that says True when nobody will
    look at that frame (the sampler will drop it); an H.264 frame that no other frame refers
    to is then not decoded at all (:mod:`vigil.ingest.nal`). Skipped frames still count in
    ``seq`` (it stays the frame's index in the stream) and in :attr:`skipped_frames`.
    """

    #: See the class docstring; None decodes every frame.
    skip: Callable[[float], bool] | None = None

    def __init__(
        self,
        url: str,
        camera_id: str = "camera",
        *,
        live: bool | None = None,
        reconnect: bool | None = None,
        backoff: Backoff | None = None,
        stall_timeout: float = 10.0,
        open_timeout: float | None = None,
        max_attempts: int | None = None,
        options: dict[str, str] | None = None,
        on_status: StatusCallback | None = None,
        realtime: bool = False,
    ) -> None:
        if stall_timeout <= 0:
            raise ValueError(f"stall_timeout must be > 0 seconds, got {stall_timeout}")
        self.url = url
        self.safe_url = mask_credentials(url)
        self.camera_id = camera_id
        self.network = is_network_url(url)
        self.live = self.network if live is None else live
        self.reconnect = self.live if reconnect is None else reconnect
        self.backoff = backoff or Backoff()
        self.stall_timeout = stall_timeout
        self.open_timeout = open_timeout if open_timeout is not None else stall_timeout
        self.max_attempts = max_attempts
        self.options, self.decode_options = split_options(options)
        self.on_status = on_status
        #: ``"software"`` or the hwaccel decoding the open stream (``"cuda"``): telemetry.
        self.decoder = "software"
        self._hwaccel: HWAccel | None = None
        self._hwaccel_resolved = False

        self._container: InputContainer | None = None
        self._stream: VideoStream | None = None
        self._info: SourceInfo | None = None
        self._closed = False
        #: Packets the decoder refused as corrupt (each costs a frame, not the source) and
        #: frames it decoded with errors (concealed; still analysed).
        self.decode_errors = 0
        self._wake = threading.Event()
        self._pacer = Pacer(self._wake) if realtime else None
        # One scaler per thread: reused across frames (its setup is the expensive part), and
        # never shared, since the detector may ask for BGR from another thread.
        self._scalers = threading.local()
        self._iterating_thread: int | None = None
        self._state: SourceState | None = None
        self._last_error: str | None = None
        self._last_frame_time: float | None = None
        # Frame timing across connections.
        self._seq = 0
        self._segment_frames = 0
        self._first_pts: int | None = None
        self._pts_offset = 0.0
        self._start_wall: float | None = None
        self._last_pts = 0.0
        #: Frames left undecoded because ``skip`` said nobody needs them.
        self.skipped_frames = 0
        self._skipped_pts: list[float] = []  # skipped, not yet passed by a decoded frame
        self._length_size: int | None = None

    # -- public API ---------------------------------------------------------------------------

    @property
    def status(self) -> SourceStatus:
        """The current state (``connecting`` before the first ``open``)."""
        return self._status(self._state or SourceState.CONNECTING)

    def open(self) -> SourceInfo:
        """Open the source (idempotent); raises ``SourceError`` naming the problem and the fix."""
        if self._closed:
            raise SourceError(f"{self.safe_url} was closed; create a new source to read it again")
        if self._info is not None and self._container is not None:
            return self._info
        self._set_state(SourceState.CONNECTING)
        try:
            return self._connect()
        except SourceError as exc:
            self._set_state(SourceState.FAILED, str(exc))
            raise

    def frames(self) -> Iterator[Frame]:
        """Decoded frames until the file ends, the source is closed or reconnection gives up."""
        self.open()
        self._iterating_thread = threading.get_ident()
        try:
            yield from self._run()
        finally:
            self._iterating_thread = None
            self._close_container()

    def close(self) -> None:
        """Stop reading and release FFmpeg's resources; safe to call twice or from any thread."""
        self._closed = True
        self._wake.set()
        # The decoding thread closes its own container: closing it under a running demuxer
        # would free memory FFmpeg is using.
        if self._iterating_thread in (None, threading.get_ident()):
            self._close_container()

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AvSource({self.safe_url!r}, camera_id={self.camera_id!r}, live={self.live})"

    # -- connection ---------------------------------------------------------------------------

    def _hw(self) -> HWAccel | None:
        """The hardware decoder to open with: resolved (and any fallback logged) once."""
        if not self._hwaccel_resolved:
            self._hwaccel = hwaccel_for(self.decode_options, self.safe_url)
            self._hwaccel_resolved = True
        return self._hwaccel

    def _connect(self) -> SourceInfo:
        started = time.monotonic()
        hw = self._hw()
        # Software decoding passes no hwaccel at all: av.open behaves as it always has.
        extra: dict[str, Any] = {} if hw is None else {"hwaccel": hw}
        try:
            container = av.open(
                self.url,
                options=self.options,
                timeout=(self.open_timeout, self.stall_timeout),
                **extra,
            )
        except (av.error.FFmpegError, OSError) as exc:
            # FFmpeg's RTSP demuxer reports an interrupted (timed out) read as invalid data,
            # so the clock is the reliable witness of a timeout.
            timed_out = time.monotonic() - started >= 0.95 * self.open_timeout
            raise self._translate(exc, "open", timed_out=timed_out) from None
        if not isinstance(container, InputContainer) or not container.streams.video:
            container.close()
            raise SourceError(
                f"{self.safe_url} holds no video stream; give a video file or a camera's video URL"
            )
        stream = container.streams.video[0]
        if hw is None:
            # Frame and slice threads: PyAV decodes single-threaded unless asked.
            stream.thread_type = "AUTO"
        # With a hwaccel NVDEC does the work; FFmpeg's frame threads would only add
        # surfaces in flight (and some hwaccels refuse frame threading).
        on_device = hw is not None and stream.codec_context.is_hwaccel
        self.decoder = (self.decode_options.hwaccel or "software") if on_device else "software"
        if hw is not None and not on_device:
            log.warning("%s: the %s decoder cannot take this stream (%s); decoding in "
                        "software", self.safe_url, self.decode_options.hwaccel,
                        stream.codec_context.name)  # fmt: skip
        self._container, self._stream = container, stream
        self._length_size = avcc_length_size(stream.codec_context.extradata)
        self._skipped_pts = []
        self._info = self._describe(stream)
        self._first_pts = None
        self._segment_frames = 0
        if self._start_wall is not None:
            # A reopened stream restarts its clock: continue from the elapsed wall time (live)
            # but never backwards (a stream may have been read faster than real time).
            self._pts_offset = self._last_pts + 1.0 / self._info.fps
            if self.live:
                self._pts_offset = max(self._pts_offset, clock.now() - self._start_wall)
        return self._info

    def _describe(self, stream: VideoStream) -> SourceInfo:
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        if not math.isfinite(fps) or fps <= 0 or fps > 1000:
            fps = DEFAULT_FPS
        frames = int(stream.frames or 0)
        return SourceInfo(
            url=self.safe_url,
            width=int(stream.codec_context.width),
            height=int(stream.codec_context.height),
            fps=fps,
            frame_count=frames if frames > 0 and not self.network else None,
            live=self.live,
        )

    def _close_container(self) -> None:
        container, self._container, self._stream = self._container, None, None
        if container is not None:
            try:
                container.close()
            except (av.error.FFmpegError, OSError) as exc:
                # Closing a dead connection can fail; there is nothing left to release.
                log.debug("closing %s: %s", self.safe_url, mask_credentials(str(exc)))

    # -- decoding -----------------------------------------------------------------------------

    def _run(self) -> Iterator[Frame]:
        while not self._closed:
            try:
                yield from self._decode()
            except SourceError as exc:
                if self._closed:
                    return
                if not self.reconnect:
                    self._set_state(SourceState.FAILED, str(exc))
                    raise
                error, stalled = str(exc), isinstance(exc, _StallError)
            else:
                if self._closed:
                    return
                if not self.reconnect:
                    self._set_state(SourceState.ENDED)
                    return
                error, stalled = f"{self.safe_url}: the stream ended", False
            self._close_container()
            if stalled:
                self._set_state(SourceState.STALLED, error)
            if not self._reconnect(error):
                return

    def _reconnect(self, error: str) -> bool:
        """Reopen with backoff; False when closed meanwhile. Raises when attempts run out."""
        while not self._closed:
            if self.max_attempts is not None and self.backoff.attempts >= self.max_attempts:
                self._set_state(SourceState.FAILED, error)
                raise SourceError(
                    f"{self.safe_url}: gave up after {self.backoff.attempts} reconnection "
                    f"attempts; last error: {error}"
                )
            delay = self.backoff.next()
            self._set_state(SourceState.RECONNECTING, error)
            if self._wake.wait(delay):
                return False
            try:
                self._connect()
            except SourceError as exc:
                error = str(exc)
                continue
            return True
        return False

    def _decode(self) -> Iterator[Frame]:
        container, stream = self._container, self._stream
        if container is None or stream is None:
            raise SourceError(f"{self.safe_url} is not open")
        last_frame = time.monotonic()
        # Live: demux every stream so that the stall check runs even while only audio flows.
        packets = container.demux() if self.network else container.demux(stream)
        try:
            for packet in packets:
                if self._closed:
                    return
                if packet.stream.index != stream.index:
                    if time.monotonic() - last_frame > self.stall_timeout:
                        raise self._stalled()
                    continue
                if self._skippable(packet, stream):
                    continue
                for av_frame in self._decode_packet(packet):
                    yield self._make_frame(av_frame, stream)
                    last_frame = time.monotonic()
                    if self._closed:
                        return
                if self.network and time.monotonic() - last_frame > self.stall_timeout:
                    raise self._stalled()
        except (av.error.ExitError, av.error.TimeoutError) as exc:
            if self._closed:
                return
            raise self._stalled() from exc
        except (av.error.FFmpegError, OSError) as exc:
            if self._closed:
                return
            raise self._translate(exc, "read") from None

    def _skippable(self, packet: av.Packet[Any], stream: VideoStream) -> bool:
        """Leave ``packet`` out of the decoder (see ``skip``); records it as skipped."""
        time_base: Fraction | None = packet.time_base or stream.time_base
        if (
            self.skip is None
            or self._first_pts is None  # the clock starts with the first decoded frame
            or packet.pts is None
            or time_base is None
            or stream.codec_context.name != "h264"
            or self.decoder != "software"
        ):
            return False
        pts = self._pts_offset + float((packet.pts - self._first_pts) * time_base)
        if pts <= self._last_pts or not self.skip(pts):
            return False
        if not h264_disposable(bytes(packet), self._length_size):
            return False
        heapq.heappush(self._skipped_pts, pts)
        self.skipped_frames += 1
        return True

    def _decode_packet(self, packet: av.Packet[Any]) -> list[VideoFrame]:
        try:
            frames = [f for f in packet.decode() if isinstance(f, VideoFrame)]
        except av.error.InvalidDataError as exc:
            # One corrupt packet (lost RTP data, a damaged file) costs a frame, not the source.
            self._decode_error(f"skipped a corrupt packet: {exc.strerror or exc}")
            return []
        for frame in frames:
            if frame.is_corrupt:  # decoded with errors the decoder concealed: still analysed
                self._decode_error("a frame decoded with errors (damaged packets)")
        return frames

    def _decode_error(self, what: str) -> None:
        self.decode_errors += 1
        # The first and every 100th: a damaged stream can corrupt many frames a second.
        if self.decode_errors % 100 == 1:
            log.warning("%s: %s (%d decode errors so far)", self.safe_url,
                        mask_credentials(what), self.decode_errors)  # fmt: skip

    def _make_frame(self, av_frame: VideoFrame, stream: VideoStream) -> Frame:
        pts = self._pts_seconds(av_frame, stream)
        if self._pacer is not None:
            self._pacer.wait(pts)  # close() cuts the wait short; the caller then stops
        now = clock.now()  # a jump of the host clock must not reach frame times
        if self._start_wall is None:
            self._start_wall = now - pts
        while self._skipped_pts and self._skipped_pts[0] < pts:
            heapq.heappop(self._skipped_pts)  # a skipped frame came before this one
            self._seq += 1
        frame = Frame(
            camera_id=self.camera_id,
            seq=self._seq,
            pts=pts,
            wall_time=now if self.live else self._start_wall + pts,
            luma_loader=luma_loader(av_frame, self._reformatter),
            size=(av_frame.width, av_frame.height),
            loader=bgr_loader(av_frame, self._reformatter),
            live=self.live,
            region_loader=region_loader(av_frame, self._crop_reformatter),
        )
        self._seq += 1
        self._segment_frames += 1
        self._last_pts = pts
        self._last_frame_time = now
        if self._state is not SourceState.STREAMING:
            self.backoff.reset()
            self._set_state(SourceState.STREAMING)
        return frame

    def _crop_reformatter(self) -> VideoReformatter:
        # Its own scaler: crops of changing sizes must not reset the full frames' one.
        scaler: VideoReformatter | None = getattr(self._scalers, "crops", None)
        if scaler is None:
            scaler = self._scalers.crops = VideoReformatter()
        return scaler

    def _reformatter(self) -> VideoReformatter:
        scaler: VideoReformatter | None = getattr(self._scalers, "reformatter", None)
        if scaler is None:
            scaler = self._scalers.reformatter = VideoReformatter()
        return scaler

    def _pts_seconds(self, av_frame: VideoFrame, stream: VideoStream) -> float:
        time_base: Fraction | None = av_frame.time_base or stream.time_base
        if av_frame.pts is None or time_base is None:
            fps = self._info.fps if self._info else DEFAULT_FPS
            return self._pts_offset + self._segment_frames / fps
        if self._first_pts is None:
            self._first_pts = av_frame.pts
        return self._pts_offset + float((av_frame.pts - self._first_pts) * time_base)

    # -- errors and status --------------------------------------------------------------------

    def _stalled(self) -> SourceError:
        return _StallError(
            f"{self.safe_url} stalled: no frame for {self.stall_timeout:g} s; is the camera "
            "still reachable?"
        )

    def _translate(
        self, exc: BaseException, action: str, *, timed_out: bool = False
    ) -> SourceError:
        """An FFmpeg error as a ``SourceError`` that names the source and the likely fix."""
        reason = mask_credentials(getattr(exc, "strerror", None) or str(exc) or type(exc).__name__)
        if timed_out or isinstance(exc, av.error.ExitError | av.error.TimeoutError):
            # PyAV's timeout interrupts FFmpeg, which then reports "Immediate exit requested".
            limit = self.open_timeout if action == "open" else self.stall_timeout
            reason = f"no answer within {limit:g} s"
        where = f"cannot {action} {self.safe_url}: {reason}"
        if isinstance(exc, av.error.HTTPUnauthorizedError | av.error.HTTPForbiddenError):
            fix = "check the user name and password in the URL"
        elif isinstance(exc, av.error.HTTPNotFoundError):
            fix = "the server has no stream at this path; check the URL's path"
        elif isinstance(exc, av.error.ProtocolNotFoundError):
            fix = "FFmpeg cannot read this kind of URL; check the scheme (rtsp://, https://)"
        elif self.network:
            fix = "is the camera reachable? check host, port, path and credentials"
        elif isinstance(exc, FileNotFoundError):
            fix = "check the path"
        elif isinstance(exc, IsADirectoryError):
            fix = "give a video file, not a directory"
        elif isinstance(exc, PermissionError):
            fix = "check the file's permissions"
        elif isinstance(exc, av.error.InvalidDataError):
            fix = "FFmpeg cannot decode it: is it really a video file? check the path"
        else:
            fix = "check that the file is a readable video"
        return SourceError(f"{where}; {fix}")

    def _status(self, state: SourceState) -> SourceStatus:
        return SourceStatus(
            camera_id=self.camera_id,
            url=self.safe_url,
            state=state,
            attempts=self.backoff.attempts,
            last_error=self._last_error,
            last_frame_time=self._last_frame_time,
        )

    def _set_state(self, state: SourceState, error: str | None = None) -> None:
        if error is not None:
            self._last_error = mask_credentials(error)
        if state is self._state and state is not SourceState.RECONNECTING:
            return
        self._state = state
        status = self._status(state)
        if state in (SourceState.STALLED, SourceState.RECONNECTING, SourceState.FAILED):
            log.warning(
                "%s %s (attempt %d): %s",
                self.camera_id,
                state.value,
                status.attempts,
                status.last_error,
            )
        else:
            log.info("%s %s", self.camera_id, state.value)
        if self.on_status is not None:
            self.on_status(status)
