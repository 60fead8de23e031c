"""The ``hwaccel`` source option: plumbing, validation and the fall back to software.

Real NVDEC decoding is in ``tests/gpu``. Here the device either is missing (this machine) or
is stood in for by recording what ``av.open`` was given, so the option's path through
``AvSource`` is checked without a GPU, and software decoding is shown to be unchanged.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from av.codec.hwaccel import HWAccel

from tests.conftest import require_file
from vigil.errors import SourceError
from vigil.ingest import AvSource, open_source
from vigil.ingest import av_source as av_source_module
from vigil.ingest import hwaccel as hw
from vigil.ingest.hwaccel import DecodeOptions, demuxer_options, split_options
from vigil.paths import shared_data_dir
from vigil.record.recorder import Recorder


@pytest.fixture
def clip() -> Path:
    return require_file(shared_data_dir() / "clips" / "car-detection.mp4")


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every ``av.open`` call's keyword arguments; the real open runs without a hwaccel."""
    calls: list[dict[str, Any]] = []
    real_open = av.open

    def spy(url: str, **kwargs: Any) -> Any:
        calls.append(dict(kwargs))
        kwargs.pop("hwaccel", None)
        return real_open(url, **kwargs)

    monkeypatch.setattr(av_source_module.av, "open", spy)
    return calls


def lumas(source: AvSource, n: int) -> list[np.ndarray]:
    out = []
    for frame in source.frames():
        out.append(frame.luma)
        if len(out) == n:
            source.close()
    return out


def test_split_options():
    demuxer, decode = split_options({"rtsp_transport": "tcp", "hwaccel": "CUDA ",
                                     "hwaccel_device": "1"})  # fmt: skip
    assert demuxer == {"rtsp_transport": "tcp"}
    assert decode == DecodeOptions("cuda", "1")
    assert split_options({"rtsp_transport": "tcp"}) == ({"rtsp_transport": "tcp"}, DecodeOptions())
    assert split_options(None) == ({}, DecodeOptions())
    assert split_options({"hwaccel": "none"}) == ({}, DecodeOptions())
    assert demuxer_options({"hwaccel": "cuda", "hwaccel_device": "0", "a": "b"}) == {"a": "b"}


def test_unknown_hwaccel_is_refused_naming_the_choices():
    with pytest.raises(SourceError, match=r"hwaccel 'nvidia'.*cuda.*leave hwaccel out"):
        split_options({"hwaccel": "nvidia"})
    with pytest.raises(SourceError, match="hwaccel_device '1' is set without hwaccel"):
        split_options({"hwaccel_device": "1"})
    with pytest.raises(SourceError, match="nvidia"):
        AvSource("x.mp4", options={"hwaccel": "nvidia"})


def test_software_decoding_passes_no_hwaccel(clip: Path, opened: list[dict[str, Any]]):
    source = AvSource(str(clip), options={"probesize": "5000000"})
    assert len(lumas(source, 3)) == 3
    assert opened == [{"options": {"probesize": "5000000"}, "timeout": (10.0, 10.0)}]
    assert source.decoder == "software"


def test_a_missing_device_falls_back_to_software_with_the_reason(
    clip: Path, caplog: pytest.LogCaptureFixture, opened: list[dict[str, Any]]
):
    if hw.device_problem("cuda") is None:
        pytest.skip("this machine has a working CUDA device: tests/gpu decode on it")
    caplog.set_level(logging.WARNING, logger="vigil.ingest.hwaccel")
    plain = lumas(AvSource(str(clip)), 10)
    source = AvSource(str(clip), options={"hwaccel": "cuda"})
    got = lumas(source, 10)
    assert source.decoder == "software"
    assert "hwaccel" not in opened[-1]
    assert "hwaccel" not in opened[-1]["options"]
    for a, b in zip(plain, got, strict=True):
        np.testing.assert_array_equal(a, b)
    warnings = [r for r in caplog.records if "hwaccel cuda is not usable" in r.getMessage()]
    assert len(warnings) == 1
    assert "decoding in software" in warnings[0].getMessage()


def test_an_available_device_reaches_av_open(
    monkeypatch: pytest.MonkeyPatch, clip: Path, opened: list[dict[str, Any]]
):
    """With the probe answering "usable", the source opens with an ``HWAccel`` for that
    device, once per connection, and keeps FFmpeg's software fallback for odd streams."""
    monkeypatch.setattr(hw, "device_problem", lambda kind, device=None: None)
    source = open_source(str(clip), options={"hwaccel": "cuda", "hwaccel_device": "1",
                                             "probesize": "5000000"})  # fmt: skip
    assert isinstance(source, AvSource)
    assert len(lumas(source, 2)) == 2
    (call,) = opened
    assert call["options"] == {"probesize": "5000000"}
    accel = call["hwaccel"]
    assert isinstance(accel, HWAccel)
    assert accel.device_id == 1
    # The spy opened it without the hwaccel, so the codec context is software.
    assert source.decoder == "software"


def test_the_probe_reports_why_a_device_cannot_open():
    hw.device_problem.cache_clear()
    problem = hw.device_problem("cuda")
    if problem is None:
        pytest.skip("this machine has a working CUDA device")
    assert problem  # e.g. "PermissionError: [Errno 1] Operation not permitted"


def test_the_recorder_leaves_decoder_options_out(tmp_path: Path):
    recorder = Recorder("rtsp://cam/main", "cam", tmp_path,
                        options={"rtsp_transport": "tcp", "hwaccel": "cuda"})  # fmt: skip
    assert recorder.options == {"rtsp_transport": "tcp"}
