"""Fixtures for the recorder tests: a real H.264+AAC stream made with FFmpeg, segmented."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import av
import pytest

from vigil.record.segmenter import Segmenter, SegmentInfo

#: 2023-11-14T22:13:20Z: a fixed UTC start so file names are predictable.
T0 = 1_700_000_000.0


def require_tool(name: str) -> None:
    if shutil.which(name) is None:
        reason = f"{name} is not installed (apt-get install it; scripts/test.sh does on CI)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def stream35(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """35 s of testsrc 320x240 at 25 fps, H.264 with B-frames, GOP 1 s, plus a 440 Hz AAC tone."""
    require_tool("ffmpeg")
    out = tmp_path_factory.mktemp("stream") / "in.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
         "testsrc=size=320x240:rate=25", "-f", "lavfi", "-i",
         "sine=frequency=440:sample_rate=48000",
         "-t", "35", "-c:v", "libx264", "-preset", "veryfast", "-g", "25", "-keyint_min", "25",
         "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", str(out)],
        check=True,
    )  # fmt: skip
    return out


def segment_file(path: Path, root: Path, seconds: float = 10.0) -> list[SegmentInfo]:
    """Run every packet of ``path`` through a Segmenter anchored at ``T0``."""
    segmenter = Segmenter("cam1", root, segment_seconds=seconds, clock=lambda: T0)
    with av.open(str(path)) as inp:
        video = inp.streams.video[0]
        audio = inp.streams.audio[0] if inp.streams.audio else None
        segmenter.set_streams(video, audio)
        for packet in inp.demux():
            segmenter.write(packet)
    segmenter.close()
    return segmenter.segments


@pytest.fixture(scope="session")
def segments35(stream35: Path, tmp_path_factory: pytest.TempPathFactory) -> list[SegmentInfo]:
    return segment_file(stream35, tmp_path_factory.mktemp("rec"))
