"""Live video over WebSocket (``/api/cameras/{name}/live.mp4ws``): fMP4 that PyAV decodes, at
the source's rate, redacted (YuNet finds no face in the face clip's live output), unredacted
only with a grant; the encoder is shared and stops with its last viewer."""

from __future__ import annotations

import dataclasses
import io
import json
import threading
import time
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest
from starlette.websockets import WebSocketDisconnect

from tests.api.conftest import Api
from tests.conftest import require_file
from vigil.api import CameraStatus
from vigil.config.models import RedactConfig
from vigil.media.h264 import Fragmenter, codec_string, split_boxes
from vigil.paths import shared_data_dir, shared_models_dir
from vigil.store import AuditRepo, Role

URL = "/api/cameras/{}/live.mp4ws"
FPS = 15.0


class Player:
    """Plays frames into the StaticRuntime's camera ``cam`` at ``fps`` from a thread, each
    frame distinct; ``shown`` counts the frames set."""

    def __init__(self, api: Api, cam: str, frames: list[np.ndarray], fps: float = FPS) -> None:
        self.api, self.cam, self.frames, self.fps = api, cam, frames, fps
        api.runtime.set_status(CameraStatus(cam, True, "running", decode_fps=fps,
                                            last_frame_time=time.time()))  # fmt: skip
        self.shown = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Player:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set():
            frame = self.frames[self.shown % len(self.frames)].copy()
            frame[0, 0] = (self.shown % 256, self.shown // 256 % 256, 7)  # distinct pixels
            self.api.runtime.set_frame(self.cam, frame, time=time.time())
            self.shown += 1
            self._stop.wait(max(0.0, start + self.shown / self.fps - time.monotonic()))


def noise(n: int = 30, size: tuple[int, int] = (320, 240)) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8) for _ in range(n)]


def sweep(n: int = 40, size: tuple[int, int] = (320, 240)) -> list[np.ndarray]:
    """A thin bar sweeping slowly over a gradient: every frame new, none a cut (a face-
    redacted stream waits for a new detection after a cut, see ``CarriedFaces``)."""
    base = np.tile(np.linspace(40, 200, size[0], dtype=np.uint8)[None, :, None], (size[1], 1, 3))
    out = []
    for i in range(n):
        frame = base.copy()
        frame[:, 2 * i : 2 * i + 4] = 255
        out.append(frame)
    return out


def gif_frames() -> list[np.ndarray]:
    path = require_file(shared_data_dir() / "clips" / "face-demographics-walking.gif")
    with av.open(str(path)) as box:
        return [f.to_ndarray(format="bgr24") for f in box.decode(video=0)]


def receive(ws: object, seconds: float) -> tuple[dict[str, str], bytes, list[bytes]]:
    """The codec message, the init segment and the fragments received within ``seconds``."""
    head = json.loads(ws.receive_text())  # type: ignore[attr-defined]
    init = ws.receive_bytes()  # type: ignore[attr-defined]
    fragments: list[bytes] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        fragments.append(ws.receive_bytes())  # type: ignore[attr-defined]
    return head, init, fragments


def decode(init: bytes, fragments: list[bytes]) -> list[np.ndarray]:
    with av.open(io.BytesIO(init + b"".join(fragments)), format="mp4") as box:
        return [f.to_ndarray(format="bgr24") for f in box.decode(video=0)]


@pytest.fixture
def viewer(api: Api) -> Api:
    api.add_user("viewer", Role.VIEWER)
    return api


def test_fragmenter_writes_an_init_segment_and_one_fragment_per_frame() -> None:
    frag = Fragmenter((96, 64), 15)
    out = []
    for i, image in enumerate(noise(10, (96, 64))):
        out += frag.encode(image, i * 6000, keyframe=i == 0)
    frag.close()
    assert frag.init is not None
    assert codec_string(frag.init).startswith("avc1.42")
    kinds = [k for k, _ in split_boxes(bytearray(frag.init))]
    assert kinds == [b"ftyp", b"moov"]
    assert len(out) >= 9  # the last frame waits for the next one to be muxed
    assert out[0].key
    assert len(decode(frag.init, [f.data for f in out])) == len(out)


class PolledCamera:
    """A camera whose picture moves on at each poll of the live encoder (``latest_frame``):
    the sweep's next frame (distinct pixels). No clock: the camera goes as fast as the
    encoder takes its frames, so a busy machine slows both alike. Each frame given out
    notes when (``shown``, UNIX time) and how many fragments the stream had sent by then
    (``sent``). While a viewer has more than ``LEAD`` fragments waiting it gives no frame
    (None: nothing new), so a starved test is never a lagging viewer (which skips to the
    next keyframe, by design)."""

    LEAD = 8

    def __init__(self, api: Api, cam: str) -> None:
        self.api, self.cam, self.frames = api, cam, sweep()
        api.runtime.set_status(CameraStatus(cam, True, "running", decode_fps=FPS,
                                            last_frame_time=time.time()))  # fmt: skip
        self.shown: list[float] = []
        self.sent: list[int] = []
        self._inner = api.runtime.latest_frame
        api.runtime.latest_frame = self._poll  # type: ignore[method-assign]

    def _poll(self, camera: str) -> np.ndarray | None:
        if camera != self.cam:
            return self._inner(camera)
        streams = list(self.api.app.state.vigil.video.encoders().values())
        viewers = streams[0]._viewers if streams else []  # what fills up in a lagging viewer
        if any(v.queue.qsize() > self.LEAD for v in viewers):
            return None
        n = len(self.shown)
        frame = self.frames[n % len(self.frames)].copy()
        frame[0, 0] = (n % 256, n // 256 % 256, 7)
        self.sent.append(streams[0].frames if streams else 0)
        self.shown.append(time.time())
        return frame


def sequence_number(fragment: bytes) -> int:
    """A fragment's ``mfhd`` sequence number: the muxer counts its fragments with it."""
    at = fragment.index(b"mfhd")
    return int.from_bytes(fragment[at + 8 : at + 12], "big")


def test_stream_is_decodable_at_the_source_rate(viewer: Api) -> None:
    """No clock in the checks (a busy machine once failed a delivered-rate bound): the
    camera moves on at each poll of the encoder (``PolledCamera``) and the test checks that

    - the encoder took every frame the camera showed from its first on (the stream's sent
      fragments grow by one per frame shown), so none was skipped;
    - every fragment it sent reached the viewer (consecutive sequence numbers) and decodes;
    - each frame's timestamp is the source's time: stamped while the camera showed it
      (between the times its frame and the next one were given out, relative to the
      stream's first frame), so a stream running slower or faster than its source fails."""
    client = viewer.login("viewer")
    camera = PolledCamera(viewer, "cam")
    fragments: list[bytes] = []
    with client.websocket_connect(URL.format("cam") + "?width=160") as ws:
        head = json.loads(ws.receive_text())
        init = ws.receive_bytes()
        while len(fragments) < 45:
            fragments.append(ws.receive_bytes())
    assert head["codec"].startswith("avc1.")
    assert head["mime"].startswith("video/mp4")
    with av.open(io.BytesIO(init + b"".join(fragments)), format="mp4") as box:
        decoded = [(f.pts * f.time_base, f.to_ndarray(format="bgr24"))
                   for f in box.decode(video=0)]  # fmt: skip
    assert len(decoded) == len(fragments), "every fragment decodes to one frame"
    assert decoded[0][1].shape == (120, 160, 3)  # scaled to the asked width
    numbers = [sequence_number(f) for f in fragments]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), "none dropped"
    # The stream's first frame F: its fragment goes out when F + 1 is encoded, so the
    # count is 1 from the poll of F + 2 on; from F + 1 on, one more per frame shown.
    sent = camera.sent
    first = next(i for i, n in enumerate(sent) if n >= 1) - 2
    assert first >= 0
    last = first + numbers[-1] - 1  # the frame of the last fragment received
    assert len(sent) > last + 1, "its fragment went out once the next frame was shown"
    steps = np.diff(sent[first + 1 : last + 2]).tolist()
    assert steps == [1] * len(steps), "the encoder took every frame the camera showed"
    # Fragment m (from 1) holds frame first + m - 1, stamped at its encoding, after its
    # frame was shown and before the next one was; pts count from the stream's first frame.
    shown = camera.shown
    tick = 1 / 90_000 + 1e-6  # pts are whole 90 kHz ticks
    for m, (pts, _) in zip(numbers, decoded, strict=True):
        frame = first + m - 1
        low, high = shown[frame] - shown[first + 1], shown[frame + 1] - shown[first]
        assert low - tick <= float(pts) <= high + tick, (m, float(pts), low, high)
    # the last viewer left: its encoder stops
    deadline = time.monotonic() + 10
    while viewer.app.state.vigil.video.encoders() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not viewer.app.state.vigil.video.encoders()
    assert viewer.app.state.vigil.live_streams == 0


def test_viewers_share_one_encoder(viewer: Api) -> None:
    a, b = viewer.login("viewer"), viewer.login("viewer")
    with Player(viewer, "cam", sweep()), a.websocket_connect(URL.format("cam")) as wa, \
            b.websocket_connect(URL.format("cam")) as wb:  # fmt: skip
        ra, rb = receive(wa, 2.0), receive(wb, 2.0)
        assert len(viewer.app.state.vigil.video.encoders()) == 1
    assert ra[1] == rb[1]  # the same init segment
    assert decode(rb[1], rb[2])  # the joining viewer starts at a keyframe


def test_refused_without_login_or_scope_or_grant(viewer: Api) -> None:
    anonymous = viewer.client()
    viewer.add_user("other", Role.OPERATOR, cameras=["back"])
    other = viewer.login("other")
    viewer.add_user("op", Role.OPERATOR)
    op = viewer.login("op")
    grant = op.post("/api/cameras/front/live/unredacted", json={"reason": "incident 9"})
    token = grant.json()["grant"]
    cases = {
        "anonymous": (anonymous, URL.format("front")),
        "out of scope": (other, URL.format("front")),
        "unknown camera": (op, URL.format("nowhere")),
        "forged grant": (op, URL.format("front") + "?grant=forged"),
        "someone else's grant": (viewer.login("viewer"), URL.format("front") + f"?grant={token}"),
        "bad width": (op, URL.format("front") + "?width=wide"),
    }
    for case, (client, url) in cases.items():
        with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect(url) as ws:
            ws.receive_text()
        assert info.value.code == 1008, case


def test_granted_stream_is_unredacted_but_masked(api: Api) -> None:
    state = api.app.state.vigil
    left_half = [[[0, 0], [0.5, 0], [0.5, 1], [0, 1]]]
    state.settings = dataclasses.replace(
        state.settings, camera_redact={"cam": RedactConfig.model_validate({"masks": left_half})}
    )
    api.add_user("op", Role.OPERATOR)
    op = api.login("op")
    frames = noise(5)
    with Player(api, "cam", frames):
        token = op.post("/api/cameras/cam/live/unredacted",
                        json={"reason": "incident 10"}).json()["grant"]  # fmt: skip
        with op.websocket_connect(URL.format("cam") + f"?grant={token}&width=320") as ws:
            head, init, fragments = receive(ws, 2.0)
    assert head["mode"] == "encode"  # masks cannot be painted on copied packets
    assert "mask" in head["reason"]
    views = decode(init, fragments)
    assert views
    image = views[-1].astype(np.float32)
    assert float(image[:, 170:].std()) > 50  # the unmasked half is the noise, not blurred
    assert float(image[:, :150].max()) < 40  # the static mask holds even with the grant
    with api.db.session() as session:
        records = AuditRepo(session).records(action="camera.live")
    assert [r.details["redacted"] for r in records if r.details] == [False]


def test_yunet_finds_no_face_in_a_minute_of_the_redacted_face_clip(
    api: Api, tmp_path: Path
) -> None:
    model = require_file(shared_models_dir() / "yunet_face_640.onnx")
    frames = gif_frames()
    api.add_user("viewer", Role.VIEWER)
    client = api.login("viewer")
    size = (frames[0].shape[1], frames[0].shape[0])
    yunet = cv2.FaceDetectorYN.create(str(model), "", size, 0.6)
    found_raw = sum(int(yunet.detect(f)[1] is not None) for f in frames)
    assert found_raw > len(frames) // 3, "the clip must show faces for this test to mean anything"
    with Player(api, "cam", frames), client.websocket_connect(
            URL.format("cam") + f"?width={size[0]}") as ws:  # fmt: skip
        _, init, fragments = receive(ws, 60.0)
    (tmp_path / "live.mp4").write_bytes(init + b"".join(fragments))
    live = decode(init, fragments)
    assert len(live) > 300
    leaks = []
    for i, image in enumerate(live):
        yunet.setInputSize((image.shape[1], image.shape[0]))
        faces = yunet.detect(image)[1]
        if faces is not None:
            leaks.append(i)
    assert not leaks, f"YuNet found faces in {len(leaks)} of {len(live)} frames: {leaks[:20]}"


def test_granted_stream_without_packets_is_re_encoded_and_says_why(api: Api) -> None:
    """A runtime that hands the API no packets (here a ``StaticRuntime``; a Ray cluster's
    cameras, recorded on their nodes): the granted view is re-encoded from frames."""
    api.add_user("op", Role.OPERATOR)
    op = api.login("op")
    with Player(api, "cam", sweep()):
        token = op.post("/api/cameras/cam/live/unredacted",
                        json={"reason": "incident 11"}).json()["grant"]  # fmt: skip
        with op.websocket_connect(URL.format("cam") + f"?grant={token}&width=160") as ws:
            head, init, fragments = receive(ws, 1.5)
        redacted = op.websocket_connect(URL.format("cam") + "?width=160")
        with redacted as ws:
            plain = json.loads(ws.receive_text())
    assert head["mode"] == "encode"
    assert "no packets" in head["reason"]
    assert decode(init, fragments)
    assert plain["mode"] == "encode"
    assert "reason" not in plain  # a redacted view is always encoded: nothing to explain


def close_of(ws: Any) -> tuple[int, str]:
    """Read until the server closes the socket (within the test's own deadlines): its code
    and reason."""
    while True:
        message = ws.receive()
        if message["type"] == "websocket.close":
            return int(message["code"]), str(message.get("reason") or "")


def test_the_close_frame_says_why_the_stream_ended(api: Api) -> None:
    """A revoked grant and a camera that is gone each close the socket with 1008 and a
    reason in words (the player logs it); a reason too long for a close frame is cut."""
    from vigil.api.routes.livevideo import MAX_REASON, close_reason

    api.add_user("op", Role.OPERATOR)
    op = api.login("op")
    with Player(api, "cam", noise(5)):
        token = op.post("/api/cameras/cam/live/unredacted",
                        json={"reason": "incident 11"}).json()["grant"]  # fmt: skip
        with op.websocket_connect(URL.format("cam") + f"?grant={token}&width=320") as ws:
            ws.receive_text()
            assert op.delete(f"/api/cameras/cam/live/unredacted/{token}").status_code < 300
            revoked = close_of(ws)
    with op.websocket_connect(URL.format("cam") + "?width=320") as ws:
        api.runtime._statuses.clear()  # type: ignore[attr-defined]  # the camera is removed
        gone = close_of(ws)
    assert revoked == (1008, "the credential or the grant is not valid now")
    assert gone == (1008, "camera 'cam' is not there any more")
    long = "\u00e9" * 200
    assert len(close_reason(long).encode()) <= MAX_REASON
    assert close_reason(long).endswith("...")
    assert close_reason("short") == "short"


def streams(ws: Any, seconds: float) -> list[tuple[dict[str, str], bytes, list[bytes]]]:
    """Each stream the socket carried within ``seconds``: its head, init and fragments (a
    new head starts the next one)."""
    out: list[tuple[dict[str, str], bytes, list[bytes]]] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        message = ws.receive()
        assert message["type"] != "websocket.close", message
        if message.get("text") is not None:
            out.append((json.loads(message["text"]), ws.receive_bytes(), []))
        else:
            out[-1][2].append(message["bytes"])
    return out


def test_a_camera_changing_its_resolution_stays_redacted_at_its_new_size(
    api: Api, tmp_path: Path
) -> None:
    """The face clip at its size, then taller (another aspect ratio: the view's picture has
    another size), then at its size, then twice as large (scaled to the same view size): each
    new picture size starts a new stream on the socket (a head and an init segment of that
    size, decodable), never a crop or a pad of the old one; and no face shows in any frame,
    the faces carried from the old size being void at the new one (they were drawn at the
    old size's coordinates)."""
    model = require_file(shared_models_dir() / "yunet_face_640.onnx")
    frames = gif_frames()
    width, height = frames[0].shape[1], frames[0].shape[0]
    taller = (width, height * 3 // 4 * 2)  # even: the encoder pads odd sides
    sizes = [(width, height), taller, (width, height), (2 * width, 2 * height)]
    played = [cv2.resize(f, size) if size != (width, height) else f
              for size in sizes for f in frames]  # fmt: skip
    api.add_user("viewer", Role.VIEWER)
    client = api.login("viewer")
    with Player(api, "cam", played), client.websocket_connect(
            URL.format("cam") + f"?width={width}") as ws:  # fmt: skip
        got = streams(ws, 25.0)
    shapes = []
    yunet = cv2.FaceDetectorYN.create(str(model), "", (width, height), 0.6)
    leaks = []
    for n, (head, init, fragments) in enumerate(got):
        assert head["mode"] == "encode"
        live = decode(init, fragments)
        (tmp_path / f"live-{n}.mp4").write_bytes(init + b"".join(fragments))
        shapes.append({image.shape[:2] for image in live})
        for i, image in enumerate(live):
            yunet.setInputSize((image.shape[1], image.shape[0]))
            if yunet.detect(image)[1] is not None:
                leaks.append((n, i))
    assert len(got) >= 3, f"{len(got)} stream(s): the picture size changed under one"
    assert {(height, width), (taller[1], width)} <= set().union(*shapes), shapes
    assert all(len(s) == 1 for s in shapes), f"one size per stream: {shapes}"
    assert not leaks, f"YuNet found faces in frames (stream, frame) {leaks[:20]}"
