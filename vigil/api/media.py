"""Media on its way out: checked paths, byte ranges, redacted JPEGs.

Every file the API serves is found through ``safe_media_path``: the stored relative path must
have no absolute prefix, ``..``, backslash or NUL, and must resolve (symlinks included) to a
file under the media root. Paths that database rows hold (relative to the data directory) go
through ``stored_media_path``, which confines them to one media folder (``recordings/`` or
``snapshots/``): the data directory also holds the database, the export signing key and the
local unredacted-access log, and a row that names one of those (a tampered database) must not
get it served. Nothing here builds a shell command.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from vigil.api.errors import ApiError, not_found
from vigil.privacy import Redactor
from vigil.types import ImageArray

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_JPEG_QUALITY = 90


def safe_media_path(root: Path, relative: str) -> Path:
    """The file ``relative`` names under ``root``; 404 for anything unsafe or missing."""
    parts = relative.split("/")
    if (not relative or relative.startswith("/") or "\\" in relative or "\x00" in relative
            or any(p in ("", ".", "..") for p in parts)):  # fmt: skip
        raise not_found("media file")
    base = root.resolve()
    target = (base / relative).resolve()
    if not target.is_relative_to(base) or not target.is_file():
        raise not_found("media file")
    return target


#: The data directory's folders of recorded segments and of event snapshots.
RECORDINGS = "recordings"
SNAPSHOTS = "snapshots"


def stored_media_path(data_dir: Path, relative: str, folder: str) -> Path:
    """The file a database row names (``relative`` to ``data_dir``) when it lies in the media
    ``folder`` of ``data_dir`` (symlinks resolved); 404 for anything else."""
    head, _, rest = relative.partition("/")
    if head != folder:
        raise not_found("media file")
    return safe_media_path(data_dir / folder, rest)


def check_range(header: str | None, size: int) -> None:
    """Raise 416 for a single byte range that starts past the end of a ``size``-byte file.

    Satisfiable ranges are served by Starlette's ``FileResponse`` (206, ``Content-Range``);
    this only puts the unsatisfiable case into the API's error schema.
    """
    if header is None:
        return
    match = _RANGE.match(header.strip())
    if match is None:
        return  # multi-range or malformed: FileResponse decides
    first, last = match.groups()
    bad = (first != "" and int(first) >= size) or (first == "" and (last == "" or int(last) == 0))
    if first != "" and last != "" and int(last) < int(first):
        bad = True
    if bad:
        raise ApiError(416, "range_not_satisfiable", f"range {header!r} is outside the "
                       f"{size}-byte file", headers={"Content-Range": f"bytes */{size}"})


def encode_jpeg(image: ImageArray) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
    if not ok:
        raise ApiError(500, "encode_failed", "could not encode the image as JPEG")
    return bytes(np.asarray(data).tobytes())


def read_image(path: Path) -> ImageArray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ApiError(404, "not_found", "the snapshot file cannot be read")
    return np.ascontiguousarray(image, dtype=np.uint8)


class Redactors(Protocol):
    """What ``outgoing_image`` needs of ``AppState``: named here, because ``state`` imports
    the live renders, which encode with this module."""

    def redactor(self, camera: str, size: tuple[int, int]) -> Redactor: ...

    def unredacted(self, camera: str, image: ImageArray) -> ImageArray: ...


def outgoing_image(state: Redactors, camera: str, image: ImageArray, *,
                   unredacted: bool) -> bytes:  # fmt: skip
    """JPEG bytes of ``camera``'s ``image``, redacted by the camera's settings unless an
    audited unredacted request said otherwise; its static masks apply either way."""
    if unredacted:
        image = state.unredacted(camera, image)
    else:
        size = (int(image.shape[1]), int(image.shape[0]))
        image = state.redactor(camera, size).redact_still(image)
    return encode_jpeg(image)
