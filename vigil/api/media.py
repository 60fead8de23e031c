"""Media on its way out: checked paths, byte ranges, redacted JPEGs.

Every file the API serves is found through ``safe_media_path`` (``vigil.paths.confined_path``,
the rule a cluster node's media actor applies too): the stored relative path must have no
absolute prefix, ``..``, backslash or NUL, and must resolve (symlinks included) to a file
under the media root. Files that rows name are found through the app's ``MediaResolver``.
Paths that database rows hold (relative to the data directory) go through
``stored_media_path``, which confines them to one media folder (``recordings/``,
``snapshots/`` or ``previews/``): the data directory also holds the database, the export
signing key and the local unredacted-access log, and a row that names one of those (a
tampered database) must not get it served. Nothing here builds a shell command.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

import cv2
import numpy as np

from vigil.api.errors import ApiError, not_found
from vigil.errors import MediaNotFoundError
from vigil.paths import PREVIEWS, RECORDINGS, SNAPSHOTS, confined_media_path, confined_path
from vigil.privacy import Redactor
from vigil.record.quarantine import QUARANTINE, quarantine_usage
from vigil.store import EventRow, SegmentRow
from vigil.types import ImageArray

T = TypeVar("T")

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_JPEG_QUALITY = 90


def safe_media_path(root: Path, relative: str) -> Path:
    """The file ``relative`` names under ``root``; 404 for anything unsafe or missing."""
    try:
        return confined_path(root, relative)
    except MediaNotFoundError:
        raise not_found("media file") from None


def stored_media_path(data_dir: Path, relative: str, folder: str) -> Path:
    """The file a database row names (``relative`` to ``data_dir``) when it lies in the media
    ``folder`` of ``data_dir`` (symlinks resolved); 404 for anything else."""
    try:
        return confined_media_path(data_dir, relative, folder)
    except MediaNotFoundError:
        raise not_found("media file") from None


class MediaResolver(Protocol):
    """Where the file of a stored row is read from: row → a local, readable path.

    Every media route (segment playback, clips, exports, event snapshots) finds its file
    through the one resolver of ``AppState.media``, so none of them knows whether the file
    is in this server's data dir (``LocalMedia``, a single host) or on another node of a
    cluster (``vigil.cluster.media.ClusterMedia``: fetched through that node's media actor into
    a verified cache, or read from a shared mount). ``node``: the row's ``node`` column (None:
    this server's own media); ``sha256``: the row's digest, which a fetched copy must match.
    Raises ``MediaNotFoundError`` (404) for a missing or unsafe file and
    ``NodeUnavailableError`` (503) when the node holding it cannot be reached. Blocking.
    """

    def path(self, node: str | None, relative: str, folder: str, sha256: str | None) -> Path: ...

    def check(self, node: str | None, relative: str, folder: str) -> None:
        """Refuse (``MediaNotFoundError``) a row naming a file outside ``folder`` before any
        work is queued for it; cheap (no fetch)."""
        ...

    def quarantine(self) -> dict[str, tuple[int, int]]:
        """Files and bytes in quarantine per camera (``vigil.record.quarantine``), in this
        server's data dir and, on a cluster, every node's it can reach now."""
        ...


class LocalMedia:
    """The single host's resolver: every row's file is under ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def path(self, node: str | None, relative: str, folder: str, sha256: str | None) -> Path:
        return confined_media_path(self.data_dir, relative, folder)

    def check(self, node: str | None, relative: str, folder: str) -> None:
        confined_media_path(self.data_dir, relative, folder)

    def quarantine(self) -> dict[str, tuple[int, int]]:
        return quarantine_usage(self.data_dir / QUARANTINE)


def segment_source(media: MediaResolver, row: SegmentRow) -> Path:
    """The readable file of segment ``row``, wherever it was recorded; 404 when unsafe or
    missing, 503 when its node is down."""
    return _resolved(lambda: media.path(row.node, row.path, RECORDINGS, row.sha256))


def snapshot_source(media: MediaResolver, row: EventRow) -> Path:
    """The readable snapshot file of event ``row`` (it has one), wherever it was taken."""
    assert row.snapshot_path is not None
    relative = row.snapshot_path
    return _resolved(lambda: media.path(row.node, relative, SNAPSHOTS, row.snapshot_sha256))


def preview_source(media: MediaResolver, node: str | None, relative: str) -> Path:
    """The readable preview thumbnail ``relative`` (under ``previews/``) of ``node``; its
    row holds no digest, so a cluster fetches it by the node's own (``ClusterMedia``)."""
    return _resolved(lambda: media.path(node, relative, PREVIEWS, None))


def check_segment(media: MediaResolver, row: SegmentRow) -> None:
    """404 now for a segment row naming a file outside ``recordings/`` (no fetch)."""
    _resolved(lambda: media.check(row.node, row.path, RECORDINGS))


def _resolved(find: Callable[[], T]) -> T:
    try:
        return find()
    except MediaNotFoundError:
        raise not_found("media file") from None


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
        raise ApiError(
            416,
            "range_not_satisfiable",
            f"range {header!r} is outside the {size}-byte file",
            headers={"Content-Range": f"bytes */{size}"},
        )


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
