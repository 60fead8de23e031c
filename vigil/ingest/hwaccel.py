"""Hardware decoding (NVDEC through FFmpeg's ``cuda`` hwaccel) for :class:`AvSource`.

A source asks for it in its options, next to the demuxer's own::

    sources:
      - url: rtsp://cam/main
        options: {rtsp_transport: tcp, hwaccel: cuda}     # hwaccel_device: "1" for GPU 1

``hwaccel`` and ``hwaccel_device`` are taken out before the rest goes to the demuxer
(:func:`split_options`; the recorder strips them too, it never decodes). The device is
probed once per process (:func:`device_problem`): where it cannot be opened (no GPU, no
driver, an FFmpeg built without it) the source decodes in software and says why in one
warning, because a camera that decodes slowly is better than a camera that does not run.
A stream the GPU decoder cannot take (a codec or profile NVDEC lacks) falls back to software
inside FFmpeg (``allow_software_fallback``).

What happens on the GPU: decoding only. Decoded NV12 surfaces are copied to system memory
(PyAV hands out CPU frames), where the luma plane is taken as it is and colour conversion
and scaling to the detector's input run in FFmpeg's scaler on the CPU, as for software
decoding, for the sampled frames only (docs/gpu.md says what keeping frames on the GPU
would take).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import av
import av.error
from av.codec.hwaccel import HWAccel, hwdevices_available

from vigil.errors import SourceError

log = logging.getLogger(__name__)

#: Source options that configure the decoder, not FFmpeg's demuxer.
DECODE_OPTIONS = frozenset({"hwaccel", "hwaccel_device"})
#: Values of ``hwaccel`` that mean software decoding.
_SOFTWARE = frozenset({"", "none", "no", "off", "software"})


@dataclass(frozen=True, slots=True)
class DecodeOptions:
    """``hwaccel``: an FFmpeg device type (``cuda``, ``vaapi``, …) or None for software;
    ``device``: which device of that type (a CUDA index such as ``"1"``), None = default."""

    hwaccel: str | None = None
    device: str | None = None


def split_options(options: dict[str, str] | None) -> tuple[dict[str, str], DecodeOptions]:
    """``options`` split into the demuxer's and the decoder's.

    Raises ``SourceError`` for an ``hwaccel`` this FFmpeg does not know, listing the ones
    it has, and for ``hwaccel_device`` without ``hwaccel``.
    """
    given = dict(options or {})
    demuxer = {k: v for k, v in given.items() if k not in DECODE_OPTIONS}
    kind = given.get("hwaccel", "").strip().lower()
    device = given.get("hwaccel_device", "").strip() or None
    if kind in _SOFTWARE:
        if device is not None:
            raise SourceError(
                f"hwaccel_device {device!r} is set without hwaccel; add hwaccel: cuda "
                f"(or remove hwaccel_device)"
            )
        return demuxer, DecodeOptions()
    known = hwdevices_available()
    if kind not in known:
        raise SourceError(
            f"hwaccel {kind!r} is not a hardware decoder this FFmpeg has; use one of "
            f"{', '.join(known) or 'none'} (cuda for NVIDIA NVDEC), or leave hwaccel out"
        )
    return demuxer, DecodeOptions(kind, device)


def demuxer_options(options: dict[str, str] | None) -> dict[str, str]:
    """``options`` without the decoder's keys (for readers that never decode: recorders)."""
    return {k: v for k, v in (options or {}).items() if k not in DECODE_OPTIONS}


@functools.cache
def device_problem(kind: str, device: str | None = None) -> str | None:
    """Why FFmpeg cannot open hardware device ``kind`` (``device``), or None when it can.

    Opening an H.264 decoder context on the device is the test: it fails the same way a
    source's first open would (no GPU, no driver, no permission), without any source.
    Cached: devices do not come and go while Vigil runs, and each probe costs a context.
    """
    try:
        HWAccel(kind, device, allow_software_fallback=True).create(av.Codec("h264", "r"))
    except (av.error.FFmpegError, OSError, NotImplementedError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def hwaccel_for(decode: DecodeOptions, source: str) -> HWAccel | None:
    """The ``HWAccel`` for ``av.open``, or None for software decoding; logs a fallback."""
    if decode.hwaccel is None:
        return None
    problem = device_problem(decode.hwaccel, decode.device)
    if problem is not None:
        log.warning(
            "%s: hwaccel %s is not usable here (%s); decoding in software. Check the GPU and "
            "driver (nvidia-smi) or remove hwaccel from the source's options",
            source, decode.hwaccel, problem,
        )  # fmt: skip
        return None
    return HWAccel(decode.hwaccel, decode.device, allow_software_fallback=True)
