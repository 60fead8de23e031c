"""What FFmpeg's own tools say about a video file, independent of the PyAV code under test.

``ffprobe`` lists streams and packets (keyframe flags, times), ``ffmpeg`` decodes; MP4's
top-level boxes are read from the bytes. Without the tools a test skips with the reason;
under ``CI=true`` it fails, because CI installs them (``scripts/test.sh``).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.record.conftest import require_tool


def require(tool: str) -> str:
    """``tool``'s name, once it is known to be installed (else skip, or fail under CI)."""
    require_tool(tool)
    return tool


def probe(path: Path) -> dict[str, Any]:
    """``ffprobe``'s streams and packets of ``path`` as JSON."""
    done = subprocess.run(
        [require("ffprobe"), "-v", "error", "-show_streams", "-show_packets", "-of", "json",
         str(path)], capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def streams(path: Path) -> list[dict[str, Any]]:
    return list(probe(path)["streams"])


def keyframe_gaps(path: Path) -> list[float]:
    """Seconds from each video keyframe to the next, and from the last to the video's end."""
    facts = probe(path)
    (video,) = [s for s in facts["streams"] if s["codec_type"] == "video"]
    packets = [p for p in facts["packets"] if p["stream_index"] == video["index"]]
    times = sorted(float(p["pts_time"]) for p in packets)
    keys = sorted(float(p["pts_time"]) for p in packets if "K" in p["flags"])
    end = times[-1] + float(packets[-1].get("duration_time", 0.0))
    return [b - a for a, b in zip(keys, [*keys[1:], end], strict=True)]


def decoded_frames(path: Path) -> int:
    """Frames ``ffmpeg`` decodes from ``path``'s video; fails on any decoding error."""
    done = subprocess.run(
        [require("ffmpeg"), "-v", "error", "-xerror", "-i", str(path), "-map", "0:v",
         "-f", "framecrc", "pipe:1"], capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    lines = done.stdout.decode().splitlines()
    return sum(1 for line in lines if line and not line.startswith("#"))


def top_level_boxes(data: bytes) -> list[str]:
    """The types of an MP4's top-level boxes, in file order."""
    names, at = [], 0
    while at + 8 <= len(data):
        size = int.from_bytes(data[at : at + 4], "big")
        names.append(data[at + 4 : at + 8].decode("latin-1"))
        if size == 1:  # 64-bit size after the type
            size = int.from_bytes(data[at + 8 : at + 16], "big")
        assert size >= 8, f"box {names[-1]!r} at {at} has size {size}"
        at += size
    return names
