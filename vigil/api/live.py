"""Live view: unredacted-live grants and the shared renders behind the MJPEG stream.

``LiveGrants`` keeps the grants of ``POST /api/cameras/{name}/live/unredacted`` in memory: a
grant is a random token valid for one user and one camera until it expires (or is ended).
A restart forgets them, which fails closed. Each grant holds a digest of its user's account
as it was when granted (``account_state``: role, disabled, password hash, camera scope): a
change made through the API ends the user's grants at once, one made elsewhere (``vigil
user`` on the same database) is seen by the stream's next look at the account.

``LiveFrames`` renders the newest frame of a camera as JPEG for a ``LiveView`` (width, overlay,
redacted) and caches the last render per view, keyed by the frame's time, so N viewers of a
camera cost one redaction and one encoding per new frame, not N. Redaction runs at the frame's
own size, before scaling (small faces are still found), with one stream ``Redactor`` per camera
(built from that camera's redaction settings) so its temporal hold covers a face the detector
misses for a frame or two. An unredacted view still gets the camera's static masks. The
overlay is drawn after redaction, on the scaled image, so its text stays legible and is never
blurred; its boxes are those of ``vigil.api.overlay`` (none under a static mask, and the
person detections that redaction hides without a track), as in the overlay JSON.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from vigil.annotate import Annotator
from vigil.api.media import encode_jpeg
from vigil.api.overlay import OverlayBoxes
from vigil.api.runtime import RuntimeView, TrackBox, TrackSnapshot
from vigil.privacy import Redactor
from vigil.types import Detections, ImageArray

if TYPE_CHECKING:
    from vigil.store import UserRow

#: ``(camera, (width, height))`` → the redacting stream Redactor of that camera.
RedactorFactory = Callable[[str, tuple[int, int]], Redactor]
#: ``(camera, image)`` → the image as granted unredacted output shows it (static masks on).
Unredacted = Callable[[str, ImageArray], ImageArray]
#: ``(camera, snapshot)`` → the boxes its overlay shows (``AppState.overlay_boxes``).
BoxesOf = Callable[[str, TrackSnapshot], OverlayBoxes]


@dataclass(frozen=True, slots=True)
class LiveGrant:
    """Permission for ``user`` to watch ``camera`` unredacted until ``expires_at`` (UNIX s),
    while the user's ``account_state`` stays ``account``."""

    token: str
    user: str
    camera: str
    reason: str
    expires_at: float
    account: str


def account_state(row: UserRow) -> str:
    """A digest of what a grant rests on: the user's role, state, password and scope. The
    password hash only enters the digest; the digest is kept in memory, never logged."""
    cameras = None if row.cameras is None else sorted(row.cameras)
    material = [row.id, row.role.value, bool(row.disabled), row.password_hash, cameras]
    return hashlib.sha256(json.dumps(material).encode()).hexdigest()


class LiveGrants:
    """In-memory unredacted-live grants (thread-safe); ``clock`` is ``time.time`` but for tests."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self._grants: dict[str, LiveGrant] = {}
        self._lock = threading.Lock()

    def issue(self, user: str, camera: str, reason: str, account: str) -> LiveGrant:
        grant = LiveGrant(secrets.token_urlsafe(24), user, camera, reason,
                          self.clock() + self.ttl_s, account)  # fmt: skip
        with self._lock:
            self._prune()
            self._grants[grant.token] = grant
        return grant

    def valid(self, token: str, user: str, camera: str) -> LiveGrant | None:
        """The grant when ``token`` names an unexpired grant of ``user`` for ``camera``."""
        with self._lock:
            self._prune()
            grant = self._grants.get(token)
        if grant is None or grant.user != user or grant.camera != camera:
            return None
        return grant

    def end(self, token: str, user: str, camera: str) -> LiveGrant | None:
        """End the grant (only its own user can); the ended grant, or None when none matched."""
        with self._lock:
            grant = self._grants.get(token)
            if grant is None or grant.user != user or grant.camera != camera:
                return None
            del self._grants[token]
        return grant

    def end_user(self, user: str) -> list[LiveGrant]:
        """End every grant of ``user`` (their account changed); the grants ended."""
        with self._lock:
            ended = [g for g in self._grants.values() if g.user == user]
            for grant in ended:
                del self._grants[grant.token]
        return ended

    def _prune(self) -> None:
        now = self.clock()
        for token in [t for t, g in self._grants.items() if g.expires_at <= now]:
            del self._grants[token]


@dataclass(frozen=True, slots=True)
class LiveView:
    """How a viewer wants a camera: at most ``width`` pixels wide, tracks/rules drawn or not,
    redacted or not (unredacted only behind a valid ``LiveGrant``)."""

    camera: str
    width: int
    overlay: bool
    redacted: bool


def frame_time(runtime: RuntimeView, camera: str) -> float | None:
    """The camera's ``last_frame_time`` (the clock of new frames); None for an unknown camera,
    0.0 for a camera that reports no time (a frame, if any, is then rendered once)."""
    for status in runtime.cameras():
        if status.name == camera:
            return status.last_frame_time if status.last_frame_time is not None else 0.0
    return None


class LiveFrames:
    """Shared, cached live renders (see the module docstring); thread-safe."""

    def __init__(
        self, runtime: RuntimeView, redactor: RedactorFactory, unredacted: Unredacted, *,
        boxes: BoxesOf,
    ) -> None:  # fmt: skip
        self.runtime = runtime
        self._boxes = boxes
        self._redactor_factory = redactor
        self._unredacted = unredacted
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._redactors: dict[str, Redactor] = {}
        self._redacted: dict[str, tuple[float, ImageArray]] = {}
        self._jpegs: dict[LiveView, tuple[float, bytes]] = {}
        #: Renders done (not served from the cache): what tests use to see the sharing.
        self.renders = 0
        self.redactions = 0

    def jpeg(self, view: LiveView, when: float) -> bytes | None:
        """The JPEG of ``view`` for the frame of time ``when``; None while there is no frame.

        One lock per camera: concurrent viewers of a camera wait for the one render and then
        read it from the cache; other cameras render in parallel.
        """
        with self._camera_lock(view.camera):
            cached = self._jpegs.get(view)
            if cached is not None and cached[0] == when:
                return cached[1]
            frame = self.runtime.latest_frame(view.camera)
            if frame is None:
                return None
            if view.redacted:
                image = self._redact(view.camera, frame, when)
            else:
                image = self._unredacted(view.camera, frame)
            image = _scale(image, view.width)
            if view.overlay:
                image = self._draw(view.camera, image)
            data = encode_jpeg(image)
            # Renders of older frames are never served again: dropping them bounds the cache
            # to the views watched now (a client cannot grow it by asking for many widths).
            for stale in [k for k, (t, _) in self._jpegs.items()
                          if k.camera == view.camera and t != when]:  # fmt: skip
                del self._jpegs[stale]
            self._jpegs[view] = (when, data)
            self.renders += 1
            return data

    def _camera_lock(self, camera: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(camera, threading.Lock())

    def _redact(self, camera: str, frame: ImageArray, when: float) -> ImageArray:
        cached = self._redacted.get(camera)
        if cached is not None and cached[0] == when:
            return cached[1]
        size = (int(frame.shape[1]), int(frame.shape[0]))
        redactor = self._redactors.get(camera)
        if redactor is None or redactor.frame_size != size:
            redactor = self._redactors[camera] = self._redactor_factory(camera, size)
        image = redactor.process(frame)
        self._redacted[camera] = (when, image)
        self.redactions += 1
        return image

    def _draw(self, camera: str, image: ImageArray) -> ImageArray:
        try:
            zones, lines = self.runtime.rules(camera)
            counts = self.runtime.counts(camera)
        except KeyError:
            return image
        size = (int(image.shape[1]), int(image.shape[0]))
        shown = self._boxes(camera, self.runtime.latest_tracks(camera))
        names, tracked = _detections(shown.tracks + shown.people, size)
        annotator = Annotator(size, names, zones, lines)
        return annotator.draw(image, tracked, _line_totals(counts))


def _scale(image: ImageArray, width: int) -> ImageArray:
    h, w = image.shape[:2]
    if w <= width:
        return image
    height = max(2, round(h * width / w))
    return np.ascontiguousarray(cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA))


def _detections(
    tracks: tuple[TrackBox, ...], size: tuple[int, int]
) -> tuple[list[str], Detections]:
    """Normalised boxes as pixel ``Detections`` of a ``size`` image, with the class names the
    class ids index (an untracked box keeps its id -1)."""
    names = sorted({t.label for t in tracks})
    if not tracks:
        return names, Detections.empty()
    scale = np.array([size[0], size[1], size[0], size[1]], np.float32)
    return names, Detections(
        np.array([t.box for t in tracks], np.float32) * scale,
        np.array([t.score for t in tracks], np.float32),
        np.array([names.index(t.label) for t in tracks], np.int64),
        np.array([t.id for t in tracks], np.int64),
    )


def _line_totals(counts: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
    """``RuleEngine.counts()`` → line name → (a→b, b→a) totals, as the Annotator draws them."""
    out: dict[str, tuple[int, int]] = {}
    for name, line in (counts.get("lines") or {}).items():
        total = line.get("total", {}) if isinstance(line, Mapping) else {}
        out[name] = (int(total.get("a_to_b", 0)), int(total.get("b_to_a", 0)))
    return out
