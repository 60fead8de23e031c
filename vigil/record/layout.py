"""Where segments live on disk: ``recordings/<camera>/<YYYY-MM-DD>/<HH>/<MM.SS>.mp4``.

Pure functions. The UTC start of a segment names its file, so a folder listing is already a
time index, and an operator can find footage with ``ls`` when the database is gone. The
layout has one-second resolution; the exact start is stored beside the file (in the
database) and in the ``SegmentInfo`` the segmenter hands out.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from vigil.errors import ConfigError

#: Camera ids become folder names: letters, digits, ``_``, ``-`` and ``.`` (not leading).
_CAMERA_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_SEGMENT_NAME = re.compile(r"^(\d\d)\.(\d\d)(?:-(\d+))?\.mp4$")


def check_camera_id(camera: str) -> str:
    """``camera`` unchanged when it is safe as one folder name, else ``ConfigError``.

    Path inputs never reach the filesystem unchecked: ``..``, ``/`` and empty ids are refused.
    """
    if not _CAMERA_ID.match(camera) or ".." in camera:
        raise ConfigError(
            f"camera id {camera!r} cannot name a recordings folder; use 1-64 letters, digits, "
            "'_', '-' or '.' (not leading, no '..')"
        )
    return camera


def segment_path(recordings: Path, camera: str, start: float, *, index: int = 0) -> Path:
    """The file of the segment of ``camera`` that starts at ``start`` (UTC seconds).

    ``recordings`` is the recordings folder (``<data>/recordings``). ``index`` > 0 gives the
    ``MM.SS-<index>.mp4`` variant, for a second segment started within the same second (a
    camera that reconnects at once).
    """
    when = datetime.fromtimestamp(start, UTC)
    name = when.strftime("%M.%S") + (f"-{index}" if index else "") + ".mp4"
    return (
        recordings
        / check_camera_id(camera)
        / when.strftime("%Y-%m-%d")
        / when.strftime("%H")
        / name
    )


def parse_segment_path(path: Path) -> tuple[str, float]:
    """``(camera, start)`` of a file laid out by ``segment_path``; start to the second.

    Raises ``ValueError`` when ``path`` does not follow the layout.
    """
    match = _SEGMENT_NAME.match(path.name)
    if match is None:
        raise ValueError(f"{path} is not named <MM.SS>.mp4")
    hour, day, camera = path.parent.name, path.parent.parent.name, path.parent.parent.parent.name
    when = datetime.strptime(f"{day} {hour}:{match[1]}:{match[2]}", "%Y-%m-%d %H:%M:%S")
    return camera, when.replace(tzinfo=UTC).timestamp()
