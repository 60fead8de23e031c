"""H.264 in MP4 with PyAV: the one place Vigil opens video inputs, encodes and muxes.

Annotated video (``vigil analyze``), the demo clip, ``vigil redact``, exports and event clips
(``vigil.record.export``) and live video (``vigil.api.livevideo``) all write through here:

- **Inputs.** ``open_input`` gives a container with a video stream (frame-threaded decoding);
  ``probe`` its ``VideoInfo`` (size, frame count, rate); ``decode`` a packet's frames.
- **Encoding.** ``Encoding`` holds libx264's settings: preset, CRF, the longest keyframe
  interval in seconds (``keyframe_gap`` turns it into frames) and ``live`` (zerolatency,
  constrained baseline, no B-frames: a frame leaves the encoder as soon as it went in).
  ``FILE`` (annotated and demo video), ``EXPORT`` (exports, clips, ``vigil redact``), ``LIVE``.
- **Pixels.** Frames are BGR uint8 arrays. yuv420p needs even sides, so an odd width or
  height is padded by one black column or row: every pixel is kept and coordinates do not
  move. A frame of another size than its stream's is cropped or padded to it.
- **Timestamps.** ``H264Stream.write(image, pts, time_base)`` rescales ``pts`` to the
  stream's time base and keeps it strictly increasing (a clock that stepped back, two frames
  on one tick); without ``pts`` frames are numbered at the stream's constant rate.
- **Muxing.** ``Mp4Output`` writes a file with ``faststart`` (the index before the media, so
  a player starts before the download ends) or, with ``fragmented=True``, fragmented MP4 into
  a buffer: an init segment (``ftyp`` + ``moov``), then one ``moof`` + ``mdat`` per frame, what
  Media Source Extensions play (``Fragmenter``). ``add_copy`` adds a stream copied packet for
  packet (audio) beside the encoded video; ``CopyFragmenter`` muxes a camera's own H.264
  packets (no encoder) into the same fragmented MP4, for stream-copied live video.
- **Errors.** Every failure is a ``MediaError`` that names the file and the fix:
  ``MediaReadError`` (a ``SourceError``) for inputs, ``MediaWriteError`` (a ``StorageError``)
  for outputs.
- ``partial_file``: write under a hidden name, renamed when complete and deleted on any
  error, so a half-written video is never seen (fail closed).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import av
import numpy as np

from vigil.errors import MediaError, MediaReadError, MediaWriteError
from vigil.types import ImageArray

#: The longest run of frames without a keyframe in a file, in seconds: a player seeks (and a
#: browser starts a Range request) at a keyframe, so this bounds how far it decodes before
#: showing the frame asked for.
KEYFRAME_EVERY_S = 2.0
#: A 90 kHz clock (as RTP video) for streams whose frames carry their own capture times.
CLOCK = Fraction(1, 90_000)
#: Fragmented MP4 for Media Source Extensions: an empty ``moov`` first (the init segment),
#: every fragment's offsets relative to itself, and a fragment per frame (no muxing delay).
_FRAGMENTED = "empty_moov+default_base_moof+frag_keyframe+frag_every_frame"

#: ``(width, height)`` in pixels.
Size = tuple[int, int]


# -- settings ---------------------------------------------------------------------------------


def keyframe_gap(rate: Fraction, seconds: float) -> int:
    """Frames between keyframes so that no gap exceeds ``seconds`` at ``rate`` frames/s.

    x264 counts the interval in frames at the stream's nominal rate: one frame under the bound
    leaves room for timestamps that wander (scene cuts add keyframes on top).
    """
    return max(1, int(rate * Fraction(seconds)) - 1)


@dataclass(frozen=True, slots=True)
class Encoding:
    """libx264's settings for one kind of output (see the module docstring)."""

    preset: str = "veryfast"
    crf: int = 23
    keyframe_s: float = KEYFRAME_EVERY_S
    live: bool = False

    def options(self, rate: Fraction) -> dict[str, str]:
        """The encoder's options for a stream of ``rate`` frames/s."""
        options = {"preset": self.preset, "crf": str(self.crf),
                   "g": str(keyframe_gap(rate, self.keyframe_s))}  # fmt: skip
        if self.live:  # nothing held back: no lookahead, no B-frames, every decoder plays it
            options |= {"tune": "zerolatency", "profile": "baseline", "bf": "0"}
        return options


#: Annotated video and the demo clip.
FILE = Encoding()
#: Exports, event clips and ``vigil redact``: a little better quality, evidence may be looked at
#: closely.
EXPORT = Encoding(crf=20)
#: Live video: fastest, a keyframe every second (a joining viewer forces one besides).
LIVE = Encoding(preset="ultrafast", keyframe_s=1.0, live=True)


def as_rate(fps: float | Fraction) -> Fraction:
    """A frame rate as a fraction (29.97 as 30000/1001); 25 when the input gave none."""
    if not fps or fps <= 0:
        return Fraction(25)
    return Fraction(fps).limit_denominator(1001)


def even_size(size: Size) -> Size:
    """The encoded size of ``size``: odd sides padded by one pixel (yuv420p needs even ones)."""
    return size[0] + size[0] % 2, size[1] + size[1] % 2


# -- inputs -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """An input's first video stream: size, frame count (0 when not said) and frame rate."""

    width: int
    height: int
    frames: int
    rate: Fraction


def open_input(path: Path) -> Any:
    """``path`` opened for reading, with a video stream (decoded with frame threads)."""
    if not path.is_file():
        raise MediaReadError(path, "no such file", "check the path")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaReadError(path, "cannot be opened as video",
                             "is it a video file, and complete?", exc) from exc  # fmt: skip
    if not container.streams.video:
        container.close()
        raise MediaReadError(path, "has no video stream", "give a file with video")
    container.streams.video[0].thread_type = "AUTO"  # frame threads: decoding is seldom the cost
    return container


def video_info(stream: Any) -> VideoInfo:
    """What a PyAV video stream says of itself."""
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return VideoInfo(int(stream.codec_context.width), int(stream.codec_context.height),
                     int(stream.frames or 0), as_rate(Fraction(rate) if rate else 0))  # fmt: skip


def probe(path: Path) -> VideoInfo:
    """``video_info`` of ``path``'s first video stream."""
    with open_input(path) as container:
        return video_info(container.streams.video[0])


def decode(packet: Any, path: Path) -> list[Any]:
    """The frames of one packet of ``path``."""
    try:
        return list(packet.decode())
    except av.error.FFmpegError as exc:
        raise MediaReadError(path, "cannot be decoded",
                             "is the file damaged? ffprobe shows where", exc) from exc  # fmt: skip


# -- output -----------------------------------------------------------------------------------


def to_frame(image: ImageArray, size: Size) -> Any:
    """A bgr24 ``VideoFrame`` of ``image`` fitted to ``size``: cropped where it is larger,
    padded with black at the right and bottom where it is smaller."""
    width, height = size
    image = image[:height, :width]
    pad_h, pad_w = height - image.shape[0], width - image.shape[1]
    if pad_h or pad_w:
        image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)))
    return av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MediaWriteError(folder, "the folder cannot be created",
                              "check its permissions and free space", exc) from exc  # fmt: skip


class H264Stream:
    """One libx264 stream of an ``Mp4Output`` (``Mp4Output.add_h264``)."""

    def __init__(self, output: Mp4Output, stream: Any, size: Size, rate: Fraction,
                 time_base: Fraction) -> None:  # fmt: skip
        self._output = output
        self._stream = stream
        self.size = size
        self.rate = rate
        self.time_base = time_base
        self.frames = 0
        self._last_pts = -1

    def write(self, image: ImageArray, pts: int | None = None, time_base: Fraction | None = None,
              *, keyframe: bool = False) -> list[bool]:  # fmt: skip
        """Encode and mux ``image`` shown at ``pts`` (in ``time_base``, by default the
        stream's; None: the next frame at the stream's rate); ``keyframe`` forces one.

        Returns, per packet muxed now, whether it is a keyframe: an encoder may hold frames
        back (lookahead, B-frames), so a packet can belong to an earlier frame.
        """
        if pts is None:
            pts = round(self.frames / self.rate / self.time_base)
        elif time_base is not None and time_base != self.time_base:
            pts = round(pts * time_base / self.time_base)
        pts = max(pts, self._last_pts + 1)
        self._last_pts = pts
        frame = to_frame(image, self.size)
        frame.pts, frame.time_base = pts, self.time_base
        if keyframe:
            frame.pict_type = av.video.frame.PictureType.I
        self.frames += 1
        return self._encode(frame)

    def flush(self) -> None:
        """Mux the frames the encoder still holds (at the end of the stream)."""
        self._encode(None)

    def _encode(self, frame: Any) -> list[bool]:
        try:
            packets = self._stream.encode(frame)
        except av.error.FFmpegError as exc:
            raise MediaWriteError(self._output.name, "H.264 encoding failed",
                                  "check free memory", exc) from exc  # fmt: skip
        keys = [bool(packet.is_keyframe) for packet in packets]
        for packet in packets:
            self._output.mux(packet)
        return keys


class Mp4Output:
    """An MP4 being written: a file (``faststart``) or fragmented MP4 into a buffer.

    Streams are added before the first packet (the header holds them all); ``close`` flushes
    the encoders and finishes the file (with ``faststart``, a second pass moves the index to the
    front). Leaving a ``with`` block on an exception closes without flushing.
    """

    def __init__(self, target: Path | io.IOBase, *, fragmented: bool = False,
                 name: str | None = None) -> None:  # fmt: skip
        self.name = name if name is not None else str(target)
        if isinstance(target, Path):
            _make_folder(target.parent)
        flags = _FRAGMENTED if fragmented else "+faststart"
        try:
            self._container: Any = av.open(
                str(target) if isinstance(target, Path) else target, "w", format="mp4",
                options={"movflags": flags},
            )  # fmt: skip
        except (av.error.FFmpegError, OSError) as exc:
            raise MediaWriteError(self.name, "cannot be written",
                                  "check that its folder is writable", exc) from exc  # fmt: skip
        self._videos: list[H264Stream] = []
        self._open = True

    def add_h264(self, size: Size, fps: float | Fraction, encoding: Encoding = FILE, *,
                 time_base: Fraction | None = None) -> H264Stream:  # fmt: skip
        """A libx264 stream for frames of ``size`` (odd sides padded) at ``fps``; timestamps
        in ``time_base`` (default ``1 / fps``)."""
        rate = as_rate(fps)
        clock = time_base if time_base is not None else 1 / rate
        try:
            stream = self._container.add_stream("libx264", rate=rate)
        except (av.error.FFmpegError, ValueError) as exc:  # a PyAV built without libx264
            fix = "reinstall it: pip install --force-reinstall av"
            raise MediaWriteError(self.name, "no H.264 encoder (libx264) in PyAV", fix,
                                  exc) from exc  # fmt: skip
        stream.width, stream.height = even_size(size)
        stream.pix_fmt = "yuv420p"
        stream.time_base = clock
        stream.codec_context.time_base = clock
        stream.codec_context.options = encoding.options(rate)
        video = H264Stream(self, stream, even_size(size), rate, clock)
        self._videos.append(video)
        return video

    def add_copy(self, template: Any) -> Any:
        """A stream like the input stream ``template``, for its packets unchanged (``mux``)."""
        return self._container.add_stream_from_template(template)

    def mux(self, packet: Any) -> None:
        """Write ``packet`` (its ``stream`` one of this output's)."""
        try:
            self._container.mux(packet)
        except (av.error.FFmpegError, OSError) as exc:
            raise MediaWriteError(self.name, "cannot be written",
                                  "check free space on its disk", exc) from exc  # fmt: skip

    def close(self) -> None:
        """Flush every encoder and finish the MP4 (once; later calls do nothing)."""
        if not self._open:
            return
        try:
            for video in self._videos:
                video.flush()
        except MediaError:
            self.discard()
            raise
        self._open = False
        try:
            self._container.close()
        except (av.error.FFmpegError, OSError) as exc:
            raise MediaWriteError(self.name, "cannot be finished",
                                  "check free space on its disk", exc) from exc  # fmt: skip

    def discard(self) -> None:
        """Close without flushing: the output is abandoned (the caller deletes a file)."""
        if self._open:
            self._open = False
            with contextlib.suppress(av.error.FFmpegError, OSError):
                self._container.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if et is None:
            self.close()
        else:
            self.discard()


class H264File(Mp4Output):
    """BGR frames of one size at a constant rate into an MP4 file: ``write`` each, ``close``."""

    def __init__(self, path: Path, fps: float, size: Size, *, encoding: Encoding = FILE) -> None:
        super().__init__(path)
        self.path = path
        self.video = self.add_h264(size, fps, encoding)

    @property
    def frames(self) -> int:
        return self.video.frames

    def write(self, image: ImageArray) -> None:
        self.video.write(image)


@contextlib.contextmanager
def partial_file(target: Path) -> Iterator[Path]:
    """A hidden ``.NAME.partial`` beside ``target`` to write to: renamed to ``target`` when the
    block ends, deleted when it raises. Its name has no ``.mp4`` ending: give the format."""
    _make_folder(target.parent)
    partial = target.with_name(f".{target.name}.partial")
    try:
        yield partial
        partial.replace(target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


# -- fragmented MP4 for live video -------------------------------------------------------------


class _Collector(io.RawIOBase):
    """The muxer's output file: keeps what it is given, for ``Fragmenter`` to split."""

    def __init__(self) -> None:
        super().__init__()
        self.buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.buffer += bytes(data)
        return len(data)


def split_boxes(buffer: bytearray) -> list[tuple[bytes, bytes]]:
    """Remove the complete top-level ISO BMFF boxes from the start of ``buffer``; each as
    ``(type, bytes)``. An incomplete box stays in the buffer for the next write."""
    boxes: list[tuple[bytes, bytes]] = []
    while len(buffer) >= 8:
        size = int.from_bytes(buffer[:4], "big")
        if size < 8:  # 0 (to end of file) and 1 (64-bit) are never written by frag mode
            raise ValueError(f"unexpected MP4 box size {size}")
        if len(buffer) < size:
            break
        boxes.append((bytes(buffer[4:8]), bytes(buffer[:size])))
        del buffer[:size]
    return boxes


def codec_string(init: bytes) -> str:
    """The RFC 6381 codec of an init segment's H.264 track (``avc1.PPCCLL`` from ``avcC``),
    what ``MediaSource.isTypeSupported`` and ``addSourceBuffer`` need."""
    at = init.find(b"avcC")
    if at < 0 or len(init) < at + 8:
        raise ValueError("the init segment has no avcC box")
    return "avc1." + init[at + 5 : at + 8].hex().upper()


@dataclass(frozen=True, slots=True)
class Fragment:
    """One ``moof`` + ``mdat`` (one frame); ``key`` when it starts with a keyframe."""

    data: bytes
    key: bool


class _Fragments:
    """A fragmented-MP4 muxer's output file, split into the init segment and fragments."""

    def __init__(self) -> None:
        self.file = _Collector()
        self.init: bytes | None = None
        self._init_parts: list[bytes] = []
        #: Whether each packet muxed and not yet seen in a fragment is a keyframe, in order.
        self.pending_keys: list[bool] = []

    def collect(self) -> list[Fragment]:
        out: list[Fragment] = []
        moof: bytes | None = None
        for kind, data in split_boxes(self.file.buffer):
            if self.init is None and kind in (b"ftyp", b"moov"):
                self._init_parts.append(data)
                if kind == b"moov":
                    self.init = b"".join(self._init_parts)
            elif kind == b"moof":
                moof = data
            elif kind == b"mdat" and moof is not None:
                key = self.pending_keys.pop(0) if self.pending_keys else False
                out.append(Fragment(moof + data, key))
                moof = None
            # anything else (styp, sidx, free) carries nothing a browser needs
        if moof is not None:  # a moof whose mdat is not written yet: keep it for next time
            self.file.buffer[:0] = moof
        return out


class Fragmenter:
    """``LIVE`` H.264 into fragmented MP4 in memory: ``encode`` a BGR frame, get its fragments.

    The first ``encode`` also produces the init segment (``init``). Frames of one size (odd
    sides padded); ``pts`` in ``CLOCK`` (90 kHz).
    """

    def __init__(self, size: Size, fps: float, *, name: str = "live video") -> None:
        self._fragments = _Fragments()
        self._output = Mp4Output(self._fragments.file, fragmented=True, name=name)
        self._video = self._output.add_h264(size, fps, LIVE, time_base=CLOCK)
        self.size = self._video.size

    @property
    def init(self) -> bytes | None:
        return self._fragments.init

    def encode(self, image: ImageArray, pts: int, *, keyframe: bool = False) -> list[Fragment]:
        self._fragments.pending_keys += self._video.write(image, pts, keyframe=keyframe)
        return self._fragments.collect()

    def close(self) -> None:
        """End the stream; what the encoder still held has no viewer left, so errors in
        finishing it are of no consequence."""
        with contextlib.suppress(MediaError):
            self._output.close()


#: H.264 NAL unit types of the parameter sets a decoder needs before a picture: SPS, PPS.
_H264_PARAMETERS = frozenset({7, 8})


def annexb_units(data: bytes) -> list[bytes]:
    """The NAL units of Annex B H.264 ``data`` (start codes removed; empty when ``data`` is
    not Annex B)."""
    if not (data.startswith(b"\x00\x00\x01") or data.startswith(b"\x00\x00\x00\x01")):
        return []
    return [unit.rstrip(b"\x00") for unit in data.split(b"\x00\x00\x01")[1:] if unit]


def h264_parameter_sets(data: bytes) -> bytes:
    """The SPS and PPS of an Annex B H.264 keyframe, each with a start code (b"" if none):
    the extradata of a stream whose container gave none (an RTSP camera without
    ``sprop-parameter-sets``)."""
    units = [u for u in annexb_units(data) if u[0] & 0x1F in _H264_PARAMETERS]
    return b"".join(b"\x00\x00\x00\x01" + u for u in units)


def _box(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    """The first box ``kind`` among the sibling boxes in ``data[start:end]``: its span."""
    at = start
    while at + 8 <= end:
        size = int.from_bytes(data[at : at + 4], "big")
        if size < 8:
            return None
        if data[at + 4 : at + 8] == kind:
            return at, at + size
        at += size
    return None


def track_timescale(init: bytes) -> int:
    """The timescale (ticks per second) of an init segment's track (its ``mdhd``)."""
    at = init.find(b"mdhd")
    if at < 0:
        raise ValueError("the init segment has no mdhd box")
    field = at + 8 + (16 if init[at + 4] == 1 else 8)
    return int.from_bytes(init[field : field + 4], "big")


def _tfdt(fragment: bytes) -> tuple[int, int]:
    """Where a fragment's decode time (its ``tfdt`` value) is, and its width in bytes."""
    moof = _box(fragment, 0, len(fragment), b"moof")
    traf = None if moof is None else _box(fragment, moof[0] + 8, moof[1], b"traf")
    tfdt = None if traf is None else _box(fragment, traf[0] + 8, traf[1], b"tfdt")
    if tfdt is None:
        raise ValueError("the fragment has no moof/traf/tfdt box")
    # After the size, the type, the version and the flags; version 1 is 64-bit.
    return tfdt[0] + 12, 8 if fragment[tfdt[0] + 8] == 1 else 4


def decode_time(fragment: bytes) -> int:
    """When ``fragment`` (``moof`` + ``mdat``) is decoded: its ``tfdt``, in its track's
    timescale (``track_timescale``)."""
    at, width = _tfdt(fragment)
    return int.from_bytes(fragment[at : at + width], "big")


def shift_decode_time(fragment: bytes, ticks: int) -> bytes:
    """``fragment`` (``moof`` + ``mdat``) decoded ``ticks`` later: its ``tfdt`` moved on (the
    only absolute time in a fragment; the rest is durations and offsets)."""
    at, width = _tfdt(fragment)
    value = int.from_bytes(fragment[at : at + width], "big") + ticks
    if not 0 <= value < 1 << (8 * width):
        raise ValueError(f"a decode time of {value} ticks does not fit the fragment's tfdt")
    out = bytearray(fragment)
    out[at : at + width] = value.to_bytes(width, "big")
    return bytes(out)


class CopyFragmenter:
    """Compressed H.264 packets into fragmented MP4 in memory, copied: no decoding, no
    encoding, the camera's own bytes (Annex B units are only length-prefixed, as MP4 wants).

    ``template``: a stream holding the codec parameters (``add_stream_from_template``);
    ``extradata``: Annex B SPS/PPS for a template that has none (``h264_parameter_sets`` of
    the first keyframe); with ``size`` (the pictures' width and height), they replace the
    template's: the camera changed its parameters in band since the template was taken.
    ``start``: the seconds the first packet is decoded at (the muxer starts every stream at
    0; a stream that continues another, after a camera reconnect, starts where it ended).
    ``write`` the packets from a keyframe on, in decoding order, with increasing ``dts``;
    each returns the fragments complete now (a packet's fragment is written when the next
    packet comes: the muxer needs its duration). The first ``write`` also produces the init
    segment (``init``), whose ``codec_string`` is the camera's profile.
    """

    def __init__(self, template: Any, *, extradata: bytes = b"", name: str = "live video copy",
                 size: tuple[int, int] | None = None, start: float = 0.0) -> None:  # fmt: skip
        self._start = start
        self._ticks: int | None = None
        self._fragments = _Fragments()
        self._output = Mp4Output(self._fragments.file, fragmented=True, name=name)
        self._stream = self._output.add_copy(template)
        context = self._stream.codec_context
        if size is not None:
            # The stream changed its parameters in band: the template's are the old ones.
            context.extradata = extradata
            context.width, context.height = size
        elif extradata and not context.extradata:
            context.extradata = extradata

    @property
    def init(self) -> bytes | None:
        return self._fragments.init

    def write(self, data: bytes, pts: int, dts: int, time_base: Fraction, *,
              key: bool) -> list[Fragment]:  # fmt: skip
        """Mux one packet (timestamps in ``time_base``); its fragments, as ``collect``."""
        packet = av.Packet(data)
        packet.pts, packet.dts, packet.time_base = pts, dts, time_base
        packet.is_keyframe = key
        packet.stream = self._stream
        self._fragments.pending_keys.append(key)
        self._output.mux(packet)
        fragments = self._fragments.collect()
        if not self._start or not fragments or self.init is None:
            return fragments
        if self._ticks is None:
            self._ticks = round(self._start * track_timescale(self.init))
        return [Fragment(shift_decode_time(f.data, self._ticks), f.key) for f in fragments]

    def close(self) -> None:
        """End the stream (nobody watches any more: errors in finishing it do not matter)."""
        with contextlib.suppress(MediaError):
            self._output.close()


__all__ = [
    "CLOCK",
    "EXPORT",
    "FILE",
    "KEYFRAME_EVERY_S",
    "LIVE",
    "CopyFragmenter",
    "Encoding",
    "Fragment",
    "Fragmenter",
    "H264File",
    "H264Stream",
    "Mp4Output",
    "VideoInfo",
    "annexb_units",
    "as_rate",
    "codec_string",
    "decode",
    "decode_time",
    "even_size",
    "h264_parameter_sets",
    "keyframe_gap",
    "open_input",
    "partial_file",
    "probe",
    "shift_decode_time",
    "split_boxes",
    "to_frame",
    "track_timescale",
    "video_info",
]
