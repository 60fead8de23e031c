"""Redact a video file: every frame through a ``Redactor``, audio and timing kept.

Decoding and encoding use PyAV directly (not ``vigil.ingest``) because the file path needs
what a live ``Source`` does not carry: the audio stream, remuxed packet by packet without
re-encoding, and the container's own timestamps, copied frame by frame so the output has the
same frame count, time base and duration as the input. Output is H.264 (libx264, yuv420p)
in MP4; odd frame sizes are padded by one black row/column because yuv420p needs even sides.

Fail closed: the output is written to a hidden temporary file beside the target and renamed
only when every frame was redacted; on any error the partial file is deleted.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from vigil.config.models import RedactConfig
from vigil.errors import SourceError, StorageError
from vigil.privacy.faces import FaceDetector
from vigil.privacy.redactor import Redactor, build_redactor
from vigil.types import ImageArray

#: Called after each frame with the number of frames written so far.
ProgressCallback = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class RedactReport:
    """What ``redact_file`` did: frames written, audio kept, wall time."""

    output: Path
    frames: int
    width: int
    height: int
    audio: bool
    seconds: float

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """The input's video stream facts ``redact_file`` needs before it writes anything."""

    width: int
    height: int
    frames: int  # 0 when the container does not say
    rate: Fraction


def probe(path: Path) -> VideoInfo:
    """Size, frame count and frame rate of ``path``'s first video stream, or ``SourceError``."""
    container = _open_input(path)
    try:
        vs = container.streams.video[0]
        return VideoInfo(vs.codec_context.width, vs.codec_context.height, int(vs.frames or 0),
                         _rate(vs))
    finally:
        container.close()


def redact_file(
    source: Path,
    target: Path,
    config: RedactConfig,
    *,
    face_detector: FaceDetector | None = None,
    redactor: Redactor | None = None,
    on_frame: ProgressCallback | None = None,
    crf: int = 20,
    preset: str = "veryfast",
) -> RedactReport:
    """Write a redacted H.264 MP4 of ``source`` (any FFmpeg-readable video, GIF included).

    The Redactor (built from ``config`` unless given) is loaded *before* the output is
    opened, so a missing face detector leaves no file at all.
    """
    info = probe(source)
    if redactor is None:
        redactor = build_redactor(config, (info.width, info.height), face_detector=face_detector)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    started = time.perf_counter()
    try:
        frames, audio = _transcode(
            source, partial, redactor, info, on_frame=on_frame, crf=crf, preset=preset
        )
        partial.replace(target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return RedactReport(target, frames, info.width, info.height, audio,
                        time.perf_counter() - started)


def _transcode(
    source: Path,
    partial: Path,
    redactor: Redactor,
    info: VideoInfo,
    *,
    on_frame: ProgressCallback | None,
    crf: int,
    preset: str,
) -> tuple[int, bool]:
    with contextlib.ExitStack() as stack:
        inp = _open_input(source)
        stack.callback(inp.close)
        try:
            out = av.open(str(partial), "w", format="mp4")
        except (av.error.FFmpegError, OSError) as exc:
            raise StorageError(f"cannot write {partial.parent} ({exc}); check the path") from exc
        stack.callback(out.close)
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        vout = _video_stream(out, vin, info, crf, preset)
        ain = inp.streams.audio[0] if inp.streams.audio else None
        aout = out.add_stream_from_template(ain) if ain is not None else None
        streams = [vin] if ain is None else [vin, ain]
        count = 0
        for packet in inp.demux(*streams):
            if packet.stream is vin:
                for frame in _decode(packet, source):
                    image = redactor.process(frame.to_ndarray(format="bgr24"))
                    _encode(out, vout, _to_frame(image, frame, vout, count, info.rate))
                    count += 1
                    if on_frame is not None:
                        on_frame(count)
            elif packet.dts is not None and aout is not None:
                packet.stream = aout
                out.mux(packet)
        _encode(out, vout, None)
        return count, aout is not None


def _open_input(path: Path) -> Any:
    if not path.is_file():
        raise SourceError(f"input {path} does not exist or is not a file")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise SourceError(f"cannot open {path} as video ({exc}); is it a video file?") from exc
    if not container.streams.video:
        container.close()
        raise SourceError(f"{path} has no video stream")
    return container


def _rate(stream: Any) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return Fraction(rate) if rate else Fraction(25, 1)


def _video_stream(out: Any, vin: Any, info: VideoInfo, crf: int, preset: str) -> Any:
    vout = out.add_stream("libx264", rate=info.rate)
    vout.width = info.width + info.width % 2
    vout.height = info.height + info.height % 2
    vout.pix_fmt = "yuv420p"
    # Frames keep the input's timestamps, so the encoder counts in the input's time base.
    vout.time_base = vin.time_base
    vout.codec_context.time_base = vin.time_base
    vout.options = {"crf": str(crf), "preset": preset}
    return vout


def _decode(packet: Any, source: Path) -> list[Any]:
    try:
        return list(packet.decode())
    except av.error.FFmpegError as exc:
        raise SourceError(f"cannot decode {source} ({exc})") from exc


def _to_frame(image: ImageArray, src: Any, vout: Any, index: int, rate: Fraction) -> Any:
    """A VideoFrame of the redacted image with the source frame's timestamp."""
    pad_w, pad_h = vout.width - image.shape[1], vout.height - image.shape[0]
    if pad_w or pad_h:
        image = np.asarray(
            cv2.copyMakeBorder(image, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=0), np.uint8
        )
    frame = av.VideoFrame.from_ndarray(image, format="bgr24")
    if src.pts is not None:
        frame.pts, frame.time_base = src.pts, src.time_base
    else:  # some demuxers give no pts: derive it from the frame rate
        frame.time_base = vout.time_base
        frame.pts = int(index / rate / vout.time_base)
    return frame


def _encode(out: Any, vout: Any, frame: Any) -> None:
    try:
        for packet in vout.encode(frame):
            out.mux(packet)
    except av.error.FFmpegError as exc:
        raise StorageError(f"H.264 encoding failed ({exc})") from exc
