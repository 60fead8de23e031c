"""Redact a video file: every frame through a ``Redactor``, audio and timing kept.

Decoding and encoding go through ``vigil.media.h264`` (not ``vigil.ingest``) because the file
path needs what a live ``Source`` does not carry: the audio stream, remuxed packet by packet
without re-encoding, and the container's own timestamps, copied frame by frame so the output
has the same frame count, time base and duration as the input. Output is H.264 in MP4 as
exports are (``EXPORT``: libx264, yuv420p, odd sides padded by one black row/column, a
keyframe at least every ``KEYFRAME_EVERY_S``, the index first: ``faststart``).

Fail closed: the output is written to a hidden temporary file beside the target and renamed
only when every frame was redacted; on any error the partial file is deleted.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vigil.config.models import RedactConfig
from vigil.media.h264 import EXPORT, Mp4Output, VideoInfo, decode, open_input, partial_file, probe
from vigil.privacy.faces import FaceDetector
from vigil.privacy.redactor import Redactor, build_redactor

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
    started = time.perf_counter()
    with partial_file(target) as partial:
        frames, audio = _transcode(
            source, partial, redactor, info, on_frame=on_frame, crf=crf, preset=preset
        )
    return RedactReport(
        target, frames, info.width, info.height, audio, time.perf_counter() - started
    )


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
    with open_input(source) as inp, Mp4Output(partial) as out:
        vin = inp.streams.video[0]
        # Frames keep the input's timestamps, so the encoder counts in the input's time base.
        vout = out.add_h264((info.width, info.height), info.rate,
                            dataclasses.replace(EXPORT, crf=crf, preset=preset),
                            time_base=vin.time_base)  # fmt: skip
        ain = inp.streams.audio[0] if inp.streams.audio else None
        aout = out.add_copy(ain) if ain is not None else None
        streams = [vin] if ain is None else [vin, ain]
        for packet in inp.demux(*streams):
            if packet.stream is vin:
                for frame in decode(packet, source):
                    # Some demuxers give no pts: the frame is then the next at the input's rate.
                    vout.write(redactor.process(frame.to_ndarray(format="bgr24")), frame.pts,
                               frame.time_base)  # fmt: skip
                    if on_frame is not None:
                        on_frame(vout.frames)
            elif packet.dts is not None and aout is not None:
                packet.stream = aout
                out.mux(packet)
        return vout.frames, aout is not None


__all__ = ["ProgressCallback", "RedactReport", "redact_file"]
