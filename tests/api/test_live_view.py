"""Live view: unredacted-live grants, the MJPEG stream over real HTTP (uvicorn), shared
renders, overlay JSON. Redaction is the real CenterFace, checked with YuNet."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.api.conftest import PASSWORD, T0, Api
from tests.api.test_events import _decode, _faces, _first_frame
from tests.api.test_http_server import _serve
from vigil.api.live import LiveFrames, LiveView
from vigil.api.runtime import CameraStatus, TrackBox, TrackSnapshot
from vigil.api.state import AppState
from vigil.config.models import LineConfig, RedactConfig, ZoneConfig
from vigil.store import AuditRepo, Role
from vigil.types import ImageArray

LIVE = "/api/cameras/front/live.mjpeg"
GRANTS = "/api/cameras/front/live/unredacted"


def state_of(api: Api) -> AppState:
    state: AppState = api.app.state.vigil
    return state


def audit(api: Api, action: str) -> list[tuple[str, str, str | None]]:
    with api.db.session() as session:
        rows = AuditRepo(session).records(action=action)
    return [(r.actor, r.action, r.reason) for r in rows if r.action == action]


@pytest.fixture
def face(api: Api, clips_dir: Path, yunet_path: Path) -> ImageArray:
    image = _first_frame(clips_dir / "face-demographics-walking.gif")
    assert _faces(yunet_path, image) >= 1  # the input really shows a face
    api.runtime.set_frame("front", image, time=T0)
    return image


# -- grants -----------------------------------------------------------------------------------


def test_grant_needs_operator_and_reason_and_is_audited(api: Api) -> None:
    viewer = api.login("val", Role.VIEWER)
    assert viewer.post(GRANTS, json={"reason": "curious"}).status_code == 403
    operator = api.login("op", Role.OPERATOR)
    short = operator.post(GRANTS, json={"reason": "x"})
    assert short.status_code == 422
    assert set(short.json()) == {"error"}
    before = time.time()
    reply = operator.post(GRANTS, json={"reason": "incident 7"})
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert set(body) == {"grant", "camera", "expires_at"}
    assert body["camera"] == "front"
    assert before + 600 - 5 <= body["expires_at"] <= time.time() + 600
    assert audit(api, "camera.live.unredacted") == [("op", "camera.live.unredacted", "incident 7")]
    assert (api.data_dir / "audit" / "unredacted.jsonl").read_text().count("incident 7") == 1
    with api.db.session() as session:
        (record,) = AuditRepo(session).records(action="camera.live.unredacted")
    assert body["grant"] not in str(record.details), "the audit log never holds the token"
    assert operator.post("/api/cameras/ghost/live/unredacted",
                         json={"reason": "incident 7"}).status_code == 404  # fmt: skip


def test_grant_is_for_its_user_and_camera_until_it_expires_or_ends(api: Api) -> None:
    op = api.login("op", Role.OPERATOR)
    other = api.login("op2", Role.OPERATOR)
    grant = op.post(GRANTS, json={"reason": "incident 7"}).json()["grant"]
    state = state_of(api)
    assert state.grants.valid(grant, "op", "front") is not None
    refused = {
        "other user": other.get(LIVE, params={"grant": grant}),
        "other camera": op.get("/api/cameras/back/live.mjpeg", params={"grant": grant}),
        "forged": op.get(LIVE, params={"grant": "forged"}),
    }
    for why, reply in refused.items():
        assert reply.status_code == 403, why
        assert reply.json()["error"]["code"] == "forbidden", why
    assert other.delete(f"{GRANTS}/{grant}").status_code == 404  # not theirs to end
    state.grants.clock = lambda: time.time() + 601  # ten minutes later
    assert op.get(LIVE, params={"grant": grant}).status_code == 403
    state.grants.clock = time.time
    grant = op.post(GRANTS, json={"reason": "incident 8"}).json()["grant"]
    assert op.delete(f"{GRANTS}/{grant}").status_code == 204
    assert op.delete(f"{GRANTS}/{grant}").status_code == 404
    assert op.get(LIVE, params={"grant": grant}).status_code == 403
    assert [a[0] for a in audit(api, "camera.live.unredacted.end")] == ["op"]


@pytest.mark.parametrize(("path", "cameras"), [
    ("/api/cameras/ghost/live.mjpeg", None),
    ("/api/cameras/front/live.mjpeg", ["back"]),
    ("/api/cameras/ghost/overlay", None),
    ("/api/cameras/front/overlay", ["back"]),
])  # fmt: skip
def test_unknown_or_out_of_scope_camera_is_404(
    api: Api, path: str, cameras: list[str] | None
) -> None:
    reply = api.login("val", Role.VIEWER, cameras=cameras).get(path)
    assert reply.status_code == 404
    assert reply.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(("query", "status"), [
    ({"fps": 0}, 422), ({"fps": 16}, 422), ({"width": 8}, 422), ({"overlay": "maybe"}, 422),
])  # fmt: skip
def test_stream_parameters_are_checked(api: Api, query: dict[str, object], status: int) -> None:
    assert api.login("val", Role.VIEWER).get(LIVE, params=query).status_code == status


# -- the stream over real HTTP ----------------------------------------------------------------


@pytest.fixture
def base_url(api: Api) -> Iterator[str]:
    yield from _serve(api)


def http_login(base_url: str, name: str) -> httpx.Client:
    client = httpx.Client(base_url=base_url, timeout=10)
    reply = client.post("/api/login", json={"name": name, "password": PASSWORD})
    assert reply.status_code == 200, reply.text
    client.headers["X-CSRF-Token"] = reply.json()["csrf_token"]
    return client


def read_parts(chunks: Iterator[bytes], n: int) -> list[bytes]:
    """The JPEGs of the next ``n`` multipart parts (checks the part framing exactly)."""
    buffer, parts = b"", []
    while len(parts) < n:
        head_end = buffer.find(b"\r\n\r\n")
        if head_end >= 0:
            head = buffer[:head_end].decode()
            lines = head.split("\r\n")
            assert lines[0] == "--frame", head
            headers = dict(line.split(": ", 1) for line in lines[1:])
            assert headers["Content-Type"] == "image/jpeg"
            size = int(headers["Content-Length"])
            start = head_end + 4
            if len(buffer) >= start + size + 2:
                assert buffer[start + size : start + size + 2] == b"\r\n"
                parts.append(buffer[start : start + size])
                buffer = buffer[start + size + 2 :]
                continue
        buffer += next(chunks)
    return parts


class Feeder:
    """Gives the camera a new frame (same picture, new time) every ``period`` seconds."""

    def __init__(self, api: Api, camera: str, image: ImageArray, period: float = 0.1) -> None:
        self.stop = threading.Event()

        def run() -> None:
            i = 0
            while not self.stop.wait(period):
                i += 1
                api.runtime.set_frame(camera, image, time=T0 + i)

        self.thread = threading.Thread(target=run, daemon=True)

    def __enter__(self) -> Feeder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)


def wait_until(check: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("unredacted", [False, True])
def test_stream_sends_parts_redacted_unless_granted_and_ends_with_the_client(
    api: Api, base_url: str, face: ImageArray, yunet_path: Path, unredacted: bool
) -> None:
    api.add_user("op", Role.OPERATOR)
    client = http_login(base_url, "op")
    params: dict[str, str | int] = {"fps": 15}
    if unredacted:
        params["grant"] = client.post(GRANTS, json={"reason": "incident 9"}).json()["grant"]
    state = state_of(api)
    with Feeder(api, "front", face), client.stream("GET", LIVE, params=params) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"] == "multipart/x-mixed-replace; boundary=frame"
        assert reply.headers["cache-control"] == "no-store"
        # Keep the iterator: dropping it closes the response (and the connection) at once.
        chunks = reply.iter_bytes()
        jpegs = read_parts(chunks, 3)
        time.sleep(0.2)
        assert state.live_streams == 1, "the stream lives as long as its client"
    for data in jpegs:
        image = _decode(data)
        assert image.shape == face.shape
        assert (_faces(yunet_path, image) >= 1) is unredacted
    assert wait_until(lambda: state.live_streams == 0), "the stream ended with its client"
    records = audit(api, "camera.live")
    assert records == [("op", "camera.live", "incident 9" if unredacted else None)], (
        "one audit record per stream, not per frame"
    )
    client.close()


def test_ending_the_grant_ends_the_unredacted_stream(
    api: Api, base_url: str, face: ImageArray
) -> None:
    api.add_user("op", Role.OPERATOR)
    client = http_login(base_url, "op")
    grant = client.post(GRANTS, json={"reason": "incident 9"}).json()["grant"]
    state = state_of(api)
    with Feeder(api, "front", face), client.stream("GET", LIVE, params={"grant": grant}) as reply:
        chunks = reply.iter_bytes()
        read_parts(chunks, 1)
        assert client.delete(f"{GRANTS}/{grant}").status_code == 204
        deadline = time.monotonic() + 5
        for _ in chunks:  # the server ends the body at its next poll
            assert time.monotonic() < deadline, "the stream did not end with its grant"
    assert wait_until(lambda: state.live_streams == 0)
    client.close()


def test_stream_waits_for_a_first_frame_and_scales_and_ends_when_the_app_stops(
    api: Api, base_url: str
) -> None:
    api.runtime.set_status(CameraStatus("side", True, "connecting"))
    api.add_user("val", Role.VIEWER)
    client = http_login(base_url, "val")
    state = state_of(api)
    image = np.full((270, 480, 3), 90, np.uint8)
    with client.stream("GET", "/api/cameras/side/live.mjpeg", params={"width": 240}) as reply:
        assert reply.status_code == 200
        chunks = reply.iter_bytes()
        time.sleep(0.3)  # no frame yet: the stream is open and waits
        api.runtime.set_frame("side", image, time=T0)
        (first,) = read_parts(chunks, 1)
        assert _decode(first).shape == (135, 240, 3), "scaled to width <= 240, same aspect"
        state.stopping.set()
        rest = b"".join(chunks)  # the server ends the body: the iteration finishes
        assert b"--frame" not in rest
    assert wait_until(lambda: state.live_streams == 0)
    client.close()


# -- shared renders and the overlay ------------------------------------------------------------


def overlay_runtime(api: Api) -> None:
    api.runtime.update_rules(
        "front",
        {"door": ZoneConfig(polygon=[(0.1, 0.1), (0.5, 0.1), (0.5, 0.5)])},
        {"gate": LineConfig(points=[(0.0, 0.8), (1.0, 0.8)])},
    )
    api.runtime.set_tracks("front", TrackSnapshot(T0, 96, 64, (
        TrackBox(3, "person", 0.9, (0.25, 0.25, 0.75, 0.75)),
        TrackBox(5, "car", 0.6, (0.0, 0.0, 0.2, 0.3)),
    )))  # fmt: skip
    counts = {"lines": {"gate": {"total": {"a_to_b": 2, "b_to_a": 1},
                                 "by_class": {"person": {"a_to_b": 2, "b_to_a": 1}}}},
              "zones": {"door": {"occupancy": {"current": 1}}}}  # fmt: skip
    api.runtime.set_counts("front", counts)


def test_renders_are_shared_between_viewers_and_frames(api: Api) -> None:
    state = state_of(api)
    frames = LiveFrames(api.runtime, state.redactor, state.unredacted, boxes=state.overlay_boxes)
    view = LiveView("front", 960, overlay=False, redacted=True)
    api.runtime.set_frame("front", np.full((64, 96, 3), 127, np.uint8), time=T0)
    first = frames.jpeg(view, T0)
    assert first is not None
    for _ in range(5):  # five more viewers of the same frame
        assert frames.jpeg(view, T0) is first
    assert (frames.renders, frames.redactions) == (1, 1)
    small = frames.jpeg(LiveView("front", 48, overlay=True, redacted=True), T0)
    assert small is not None
    assert _decode(small).shape == (32, 48, 3)
    assert (frames.renders, frames.redactions) == (2, 1), "one redaction per frame, any view"
    frames.jpeg(LiveView("front", 960, overlay=False, redacted=False), T0)
    assert frames.redactions == 1, "an unredacted view does not redact"
    frames.jpeg(view, T0 + 1)
    assert (frames.renders, frames.redactions) == (4, 2)
    assert len(frames._jpegs) == 1, "renders of older frames are dropped"


def test_overlay_is_drawn_after_redaction(api: Api) -> None:
    overlay_runtime(api)
    frame = np.full((64, 96, 3), 127, np.uint8)
    api.runtime.set_frame("front", frame, time=T0)
    state = state_of(api)
    frames = LiveFrames(api.runtime, state.redactor, state.unredacted, boxes=state.overlay_boxes)
    plain = frames.jpeg(LiveView("front", 960, overlay=False, redacted=True), T0)
    drawn = frames.jpeg(LiveView("front", 960, overlay=True, redacted=True), T0)
    assert plain is not None
    assert drawn is not None
    a, b = _decode(plain).astype(int), _decode(drawn).astype(int)
    assert np.abs(a - frame).max() < 16, "a plain grey frame has nothing to redact"
    changed = np.abs(a - b).max(axis=2) > 40
    assert changed[16, 24:72].any(), "the person's box top edge (y = 0.25 * 64) is drawn"
    assert changed[48:56, :].any(), "the line at y = 0.8 * 64 is drawn"


def test_overlay_json(api: Api) -> None:
    viewer = api.login("val", Role.VIEWER)
    empty = viewer.get("/api/cameras/front/overlay").json()
    assert empty == {"time": None, "width": 0, "height": 0, "tracks": [], "people": [],
                     "zones": {}, "lines": {}, "counts": {}}  # fmt: skip
    overlay_runtime(api)
    body = viewer.get("/api/cameras/front/overlay").json()
    assert (body["time"], body["width"], body["height"]) == (T0, 96, 64)
    assert body["tracks"] == [
        {"id": 3, "label": "person", "score": 0.9, "box": [0.25, 0.25, 0.75, 0.75]},
        {"id": 5, "label": "car", "score": 0.6, "box": [0.0, 0.0, 0.2, 0.3]},
    ]
    assert body["people"] == [], "faces mode: raw detections are neither hidden nor shown"
    assert body["zones"]["door"]["polygon"] == [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]]
    assert body["lines"]["gate"]["points"] == [[0.0, 0.8], [1.0, 0.8]]
    assert body["counts"]["lines"]["gate"]["total"] == {"a_to_b": 2, "b_to_a": 1}
    with api.db.session() as session:
        assert AuditRepo(session).records(actor="val") == [], "overlay holds no pixels"


#: The right half of the picture, masked: nothing there may show, overlay included.
RIGHT_HALF = [(0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0)]
NEWCOMER = (0.1, 0.65, 0.3, 0.95)


def privacy_runtime(api: Api, mode: str) -> None:
    """``front`` in ``mode`` with the right half masked; its tracks hold its people. The
    analysed frame has a person track on the left and a car track under the mask; among its
    raw detections the track's own person, a newcomer no track holds yet, a person and a car
    under the mask."""
    state = state_of(api)
    redact = RedactConfig.model_validate({"mode": mode, "masks": [RIGHT_HALF]})
    state.settings = dataclasses.replace(state.settings, camera_redact={"front": redact},
                                         camera_tracks_people={"front": True})  # fmt: skip
    api.runtime.set_tracks("front", TrackSnapshot(T0, 96, 64, tracks=(
        TrackBox(3, "person", 0.9, (0.05, 0.1, 0.3, 0.6)),
        TrackBox(5, "car", 0.6, (0.6, 0.2, 0.95, 0.5)),
    ), detections=(
        TrackBox(-1, "person", 0.88, (0.06, 0.1, 0.31, 0.62)),
        TrackBox(-1, "person", 0.7, NEWCOMER),
        TrackBox(-1, "person", 0.8, (0.7, 0.6, 0.9, 0.95)),
        TrackBox(-1, "car", 0.6, (0.61, 0.2, 0.95, 0.5)),
    )))  # fmt: skip


@pytest.mark.parametrize(("mode", "people"), [
    ("people", [{"id": -1, "label": "person", "score": 0.7, "box": list(NEWCOMER)}]),
    ("faces+people", [{"id": -1, "label": "person", "score": 0.7, "box": list(NEWCOMER)}]),
    ("faces", []),
])  # fmt: skip
def test_overlay_json_shows_what_redaction_hides_and_nothing_under_a_mask(
    api: Api, mode: str, people: list[dict[str, object]]
) -> None:
    privacy_runtime(api, mode)
    body = api.login("val", Role.VIEWER).get("/api/cameras/front/overlay").json()
    assert body["tracks"] == [
        {"id": 3, "label": "person", "score": 0.9, "box": [0.05, 0.1, 0.3, 0.6]},
    ], "the car under the mask is not shown"
    assert body["people"] == people, "the newcomer is blurred without a track: it is listed"


def test_mjpeg_overlay_draws_the_newcomer_and_nothing_under_the_mask(api: Api) -> None:
    privacy_runtime(api, "faces+people")
    state = state_of(api)
    plain = state.live.jpeg(LiveView("front", 960, overlay=False, redacted=True), T0)
    drawn = state.live.jpeg(LiveView("front", 960, overlay=True, redacted=True), T0)
    assert plain is not None
    assert drawn is not None
    a, b = _decode(plain).astype(int), _decode(drawn).astype(int)
    assert a[8:56, 60:90].max() < 16, "the mask blacks the right half out"
    changed = np.abs(a - b).max(axis=2) > 40
    assert changed[45:60, 9:12].any(), "the newcomer's left edge (x = 0.1 * 96) is drawn"
    assert not changed[16:30, 88:94].any(), "the masked car's right edge is not drawn"
