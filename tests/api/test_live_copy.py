"""Granted unredacted live video as a stream copy: a real RTSP camera (the test relay) into a
real ``Supervisor`` (recorder in the main process, with the thread backend and with a worker
process) under the API; the received fMP4's pictures are the camera's own H.264 slices, byte
for byte (no encoder ran), while a camera with static masks is still re-encoded with them
painted; a subscriber that never reads does not stall the recording; ending the grant ends
the copy; a joining viewer starts at once from the current GOP; new parameter sets and a
camera reconnect do not end the copy: the same socket gets a fresh init segment and goes on."""

from __future__ import annotations

import contextlib
import io
import json
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from starlette.websockets import WebSocketDisconnect

pytest.importorskip("sqlalchemy", reason="the server extra is not installed")

from tests.api.conftest import PASSWORD
from tests.api.conftest import Api as ApiFixture
from tests.rtsp_relay import RtspRelay, require_tools
from vigil.api import ApiSettings, create_app
from vigil.api.livevideo import LiveEncoder, StreamCopy
from vigil.api.state import AppState
from vigil.config.models import VigilConfig
from vigil.ingest import Backoff
from vigil.media.h264 import CopyFragmenter, annexb_units, h264_parameter_sets
from vigil.record.tap import PacketTap
from vigil.runtime.serve import Supervisor
from vigil.store import AuditRepo, Database, Role, UserRepo

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

#: Main profile with B-frames, a keyframe every second, 10 fps, 768x432.
CLIP = "one-by-one-person-detection.mp4"
URL = "/api/cameras/door/live.mp4ws"
LEFT_HALF = [[[0, 0], [0.5, 0], [0.5, 1], [0, 1]]]


def wait_for(what: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} within {timeout} s")
        time.sleep(0.1)


def slices(packet: bytes) -> list[bytes]:
    """The coded slices (NAL types 1-5) of a length-prefixed (MP4) H.264 packet."""
    out, at = [], 0
    while at + 4 <= len(packet):
        size = int.from_bytes(packet[at : at + 4], "big")
        unit = packet[at + 4 : at + 4 + size]
        if unit and 1 <= unit[0] & 0x1F <= 5:
            out.append(unit)
        at += 4 + size
    return out


def mp4_slices(data: bytes | Path) -> list[bytes]:
    source = io.BytesIO(data) if isinstance(data, bytes) else str(data)
    with av.open(source, format="mp4") as box:
        return [u for p in box.demux(video=0) if p.size for u in slices(bytes(p))]


@pytest.fixture
def camera(clips_dir: Path) -> Iterator[RtspRelay]:
    require_tools("rtsp-server-perl", "ffmpeg")
    relay = RtspRelay(clips_dir / CLIP)
    relay.publish()
    time.sleep(1.5)  # the publisher announces the stream
    try:
        yield relay
    finally:
        relay.stop()


Served = tuple[TestClient, Supervisor, AppState]


@contextlib.contextmanager
def serve(tmp_path: Path, camera: RtspRelay, *, processes: int = 0,
          masks: list[Any] | None = None,
          stall_timeout: float = 10.0) -> Iterator[Served]:  # fmt: skip
    from vigil.api.auth import hash_password

    door: dict[str, Any] = {"sources": [{"url": camera.url,
                                         "options": {"rtsp_transport": "udp"}}]}  # fmt: skip
    if masks is not None:
        door["redact"] = {"masks": masks}
    config = VigilConfig.model_validate({
        "detect": {"model": "motion", "fps": 5},
        "data_dir": str(tmp_path / "data"),
        "record": {"mode": "continuous", "segment_seconds": 2},
        "server": {"worker_processes": processes},
        "cameras": {"door": door},
    })  # fmt: skip
    db = Database(f"sqlite:///{tmp_path / 'vigil.db'}")
    db.migrate()
    with db.session() as session:
        UserRepo(session).add("op", Role.OPERATOR, hash_password(PASSWORD))
    supervisor = Supervisor(
        config,
        db=db,
        backoff=lambda: Backoff(initial=0.2, factor=1.5, max=0.5, jitter=0),
        stall_timeout=stall_timeout,
    )
    settings = ApiSettings(secure_cookies=False, job_workers=0, redact=config.redact,
                           camera_redact={"door": config.redact_for("door")})  # fmt: skip
    app = create_app(settings, db, supervisor, data_dir=tmp_path / "data")
    client = TestClient(app)
    login = client.post("/api/login", json={"name": "op", "password": PASSWORD})
    assert login.status_code == 200, login.text
    client.headers["X-CSRF-Token"] = login.json()["csrf_token"]
    supervisor.start()
    try:
        tap = supervisor.packet_tap("door")
        assert tap is not None
        wait_for(lambda: tap.session is not None and tap.packets > 30, 60,
                 "the recorder receives the camera")  # fmt: skip
        wait_for(lambda: supervisor.latest_frame("door") is not None, 60, "a decoded frame")
        yield client, supervisor, app.state.vigil
    finally:
        app.state.vigil.video.stop_all()
        supervisor.stop()
        client.close()
        db.close()


def watch(client: TestClient, state: AppState, seconds: float, query: str = ""
          ) -> tuple[dict[str, Any], bytes, list[bytes], list[object]]:  # fmt: skip
    """The head message, init segment and fragments of ``seconds`` of the granted view (more
    query parameters: ``query``), and the live streams that ran it."""
    grant = client.post("/api/cameras/door/live/unredacted", json={"reason": "incident 12"})
    assert grant.status_code in (200, 201), grant.text
    token = grant.json()["grant"]
    with client.websocket_connect(f"{URL}?grant={token}&width=320{query}") as ws:
        head = json.loads(ws.receive_text())
        init = ws.receive_bytes()
        fragments: list[bytes] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            fragments.append(ws.receive_bytes())
        streams = list(state.video.encoders().values())
    return head, init, fragments, streams


@pytest.mark.parametrize("processes", [0, 1], ids=["threads", "processes"])
def test_granted_view_is_the_cameras_own_h264_byte_for_byte(
    tmp_path: Path, camera: RtspRelay, clips_dir: Path, processes: int
) -> None:
    with serve(tmp_path, camera, processes=processes) as (client, _, state):
        head, init, fragments, streams = watch(client, state, 6.0)
        with state.db.session() as session:
            records = AuditRepo(session).records(action="camera.live")
    assert [r.details["redacted"] for r in records if r.details] == [False]  # audited as before
    assert streams, "no live stream ran"
    assert all(isinstance(s, StreamCopy) for s in streams), streams
    assert head["mode"] == "copy", head
    assert "reason" not in head
    assert head["codec"] == "avc1.4D401F"  # the camera's Main profile, from its SPS
    received = mp4_slices(init + b"".join(fragments))
    assert len(received) >= 40, len(received)  # 6 s at 10 fps, less the start
    source = mp4_slices(clips_dir / CLIP)
    known = set(source)
    foreign = [i for i, unit in enumerate(received) if unit not in known]
    # Every picture is one the camera sent, unchanged: an encoder would have made new ones.
    assert not foreign, f"{len(foreign)} of {len(received)} slices are not the camera's"
    # In the camera's order, from a keyframe (an IDR slice, type 5), none left out.
    start = source.index(received[0])
    assert received[0][0] & 0x1F == 5
    looped = source + source
    assert received == looped[start : start + len(received)]
    with av.open(io.BytesIO(init + b"".join(fragments)), format="mp4") as box:
        frames = [f.to_ndarray(format="bgr24") for f in box.decode(video=0)]
    assert frames[0].shape == (432, 768, 3)  # the camera's size: width does not apply


def test_encode_1_asks_for_the_re_encoded_stream_of_a_copyable_view(
    tmp_path: Path, camera: RtspRelay
) -> None:
    """The player's fallback when its browser cannot play the camera's own profile."""
    with serve(tmp_path, camera) as (client, _, state):
        head, init, fragments, streams = watch(client, state, 3.0, "&encode=1")
        with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect(
                f"{URL}?width=320&encode=yes") as ws:  # fmt: skip
            ws.receive_text()
        # A redacted view is encoded anyway: the flag does not split its shared encoder.
        with client.websocket_connect(f"{URL}?width=320&encode=1") as ws:
            assert json.loads(ws.receive_text())["mode"] == "encode"
            views = list(state.video.encoders())
    assert refused.value.code == 1008
    assert [v.encode for v in views if v.redacted] == [False], views
    assert streams, "no live stream ran"
    assert all(isinstance(s, LiveEncoder) for s in streams), streams
    assert head["mode"] == "encode", head
    assert "encode=1" in head["reason"]
    assert head["codec"].startswith("avc1.42")  # Vigil's own live encoding (baseline)
    with av.open(io.BytesIO(init + b"".join(fragments)), format="mp4") as box:
        frames = [f.to_ndarray(format="bgr24") for f in box.decode(video=0)]
    assert frames
    assert frames[0].shape[1] == 320  # re-encoded at the view's width


def test_a_masked_camera_is_still_re_encoded_with_its_masks(
    tmp_path: Path, camera: RtspRelay
) -> None:
    with serve(tmp_path, camera, masks=LEFT_HALF) as (client, _, state):
        head, init, fragments, streams = watch(client, state, 3.0)
    assert streams, "no live stream ran"
    assert all(isinstance(s, LiveEncoder) for s in streams), streams
    assert head["mode"] == "encode", head
    assert "mask" in head["reason"]
    assert head["codec"].startswith("avc1.42")  # Vigil's own live encoding (baseline)
    with av.open(io.BytesIO(init + b"".join(fragments)), format="mp4") as box:
        frames = [f.to_ndarray(format="bgr24") for f in box.decode(video=0)]
    assert frames
    image = frames[-1].astype(np.float32)
    half = image.shape[1] // 2
    assert float(image[:, : half - 8].max()) < 40  # the mask is painted
    assert float(image[:, half + 8 :].std()) > 10  # the rest is the picture


def test_a_subscriber_that_never_reads_does_not_stall_the_recording(
    tmp_path: Path, camera: RtspRelay
) -> None:
    with serve(tmp_path, camera) as (_, supervisor, _):
        tap = supervisor.packet_tap("door")
        assert tap is not None
        recorder = supervisor.recorders["door"]
        stuck = tap.subscribe(limit=8)  # never read from: a viewer that stopped reading
        published = tap.packets
        wait_for(lambda: stuck.lagging, 30, "the stuck subscriber falls behind")
        segments = len(recorder.segmenter.segments)
        wait_for(lambda: len(recorder.segmenter.segments) >= segments + 3, 30,
                 "recording goes on while a subscriber is stuck")  # fmt: skip
        assert tap.packets > published + 40
        assert stuck.pending() <= stuck.limit  # bounded: what it missed was dropped
        assert stuck.dropped > 0
        # What it reads now starts at a keyframe (what it had was dropped, never the middle
        # of a GOP: the packets after a gap could not be decoded).
        first = stuck.get(10.0)
        assert first is not None
        assert first.key


def test_copy_fragmenter_takes_parameter_sets_from_the_first_keyframe(clips_dir: Path) -> None:
    """A camera whose SDP carries no parameter sets (extradata empty): the init segment gets
    them from the first keyframe's in-band SPS/PPS."""
    with av.open(str(clips_dir / CLIP)) as box:
        video = box.streams.video[0]
        annexb = av.BitStreamFilterContext("h264_mp4toannexb", video)
        packets = [p for raw in box.demux(video) if raw.size for p in annexb.filter(raw)][:20]
        tap = PacketTap("door")
        tap.start(video)
    session = tap.session
    assert session is not None
    session.template.codec_context.extradata = None
    first = bytes(packets[0])
    assert packets[0].is_keyframe
    assert [u[0] & 0x1F for u in annexb_units(first)][:2] == [7, 8]
    out = CopyFragmenter(session.template, extradata=h264_parameter_sets(first))
    fragments = []
    for p in packets:
        assert p.pts is not None
        assert p.dts is not None
        fragments += out.write(bytes(p), p.pts, p.dts, p.time_base, key=p.is_keyframe)
    assert out.init is not None
    with av.open(io.BytesIO(out.init + b"".join(f.data for f in fragments)), format="mp4") as mp4:
        assert len(list(mp4.decode(video=0))) >= len(fragments) - 2


def closed_with(ws: Any, timeout: float) -> int | None:
    """Read until the server closes the socket: its close code (None: still open)."""
    from starlette.websockets import WebSocketDisconnect

    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ws.receive_bytes()
    except WebSocketDisconnect as closed:
        return int(closed.code)
    return None


def test_ending_the_grant_ends_the_copied_stream_and_its_subscription(
    tmp_path: Path, camera: RtspRelay
) -> None:
    with serve(tmp_path, camera) as (client, supervisor, state):
        tap = supervisor.packet_tap("door")
        assert tap is not None
        token = client.post("/api/cameras/door/live/unredacted",
                            json={"reason": "incident 13"}).json()["grant"]  # fmt: skip
        with client.websocket_connect(f"{URL}?grant={token}") as ws:
            assert json.loads(ws.receive_text())["mode"] == "copy"
            ws.receive_bytes()
            assert tap.subscribers() == 1
            assert client.delete(f"/api/cameras/door/live/unredacted/{token}").status_code < 300
            code = closed_with(ws, 30.0)
        assert code == 1008
        wait_for(lambda: not state.video.encoders() and tap.subscribers() == 0, 10,
                 "the copy and its subscription end with the grant")  # fmt: skip
        with state.db.session() as session:
            ends = AuditRepo(session).records(action="camera.live.unredacted.end")
        assert ends, "the grant's end is audited"


def test_a_viewer_joining_a_copy_starts_at_once_with_the_current_gop(
    api: ApiFixture, tmp_path: Path, clips_dir: Path
) -> None:
    """A file camera's recorder (real time, looping) taps its packets; a second viewer of the
    same copy gets the current GOP first: fragments the first viewer already had, from a
    keyframe, not the next keyframe's."""
    from vigil.api import CameraStatus
    from vigil.record import Recorder

    recorder = Recorder(str(clips_dir / CLIP), "cam", tmp_path / "rec", file_loop=True)
    # A StaticRuntime that hands out the recorder's tap, as the Supervisor does (PacketTaps).
    api.runtime.packet_tap = (  # type: ignore[attr-defined]
        lambda camera: recorder.tap if camera == "cam" else None
    )
    api.runtime.set_status(CameraStatus("cam", True, "running", decode_fps=10.0))
    api.runtime.set_frame("cam", np.zeros((432, 768, 3), np.uint8), time=time.time())
    api.add_user("op", Role.OPERATOR)
    op = api.login("op")
    recorder.start()
    try:
        wait_for(lambda: recorder.tap.session is not None, 30, "the recorder starts")
        token = op.post("/api/cameras/cam/live/unredacted",
                        json={"reason": "incident 14"}).json()["grant"]  # fmt: skip
        url = f"/api/cameras/cam/live.mp4ws?grant={token}"
        with op.websocket_connect(url) as first:
            assert json.loads(first.receive_text())["mode"] == "copy"
            first.receive_bytes()
            before = [first.receive_bytes() for _ in range(14)]  # into the second GOP
            with op.websocket_connect(url) as second:
                assert json.loads(second.receive_text())["mode"] == "copy"
                init = second.receive_bytes()
                joined = [second.receive_bytes() for _ in range(12)]
            streams = api.app.state.vigil.video.encoders()
            assert len(streams) == 1  # one copy for both
    finally:
        recorder.close()
    assert joined[0] in before, "the joining viewer got the GOP already sent, not a later one"
    with av.open(io.BytesIO(init + b"".join(joined)), format="mp4") as box:
        packets = [p for p in box.demux(video=0) if p.size]
        assert packets[0].is_keyframe
    assert slices(bytes(packets[0]))[0][0] & 0x1F == 5  # an IDR picture


Message = tuple[str, Any]  # ("text", head dict) or ("bytes", an init segment or fragment)


def messages(ws: Any, enough: Callable[[list[Message]], bool],
             times: list[float] | None = None) -> tuple[list[Message], int | None]:  # fmt: skip
    """The socket's messages until ``enough(received)`` (or its close: the code, else None);
    their arrival times (monotonic s) go to ``times``."""
    received: list[Message] = []
    while not enough(received):
        message = ws.receive()
        if message["type"] == "websocket.close":
            return received, int(message.get("code", 1000))
        if times is not None:
            times.append(time.monotonic())
        if message.get("text") is not None:
            received.append(("text", json.loads(message["text"])))
        else:
            received.append(("bytes", message["bytes"]))
    return received, None


def outage(times: list[float], gap: float = 2.0) -> int | None:
    """The index of the first message after a pause of ``gap`` s (the camera was away)."""
    return next((i for i in range(1, len(times)) if times[i] - times[i - 1] >= gap), None)


def resumed(times: list[float], count: int) -> Callable[[list[Message]], bool]:
    """Enough: ``count`` messages after the camera's outage (``outage``)."""

    def enough(_received: list[Message]) -> bool:
        at = outage(times)
        return at is not None and len(times) - at >= count

    return enough


def check_resumed(before: list[Message], received: list[Message], times: list[float],
                  source: list[bytes]) -> None:  # fmt: skip
    """The fragments after the outage are the camera's own slices from a keyframe, decoded
    with the init segment in force, and the copy's clock went on (never back to zero)."""
    at = outage(times)
    assert at is not None
    inits = [p for kind, p in before + received if kind == "bytes" and p[4:8] == b"ftyp"]
    after = [p for kind, p in received[at:] if kind == "bytes" and p[4:8] == b"moof"]
    got = mp4_slices(inits[-1] + b"".join(after))
    assert len(got) >= 15, len(got)
    known = set(source)
    assert all(unit in known for unit in got), "the copy after the reconnect is not the camera's"
    assert got[0][0] & 0x1F == 5  # from an IDR picture
    _, init, fragments = streams_of(before + received)[-1]
    clock = decoded(init, fragments)[1]
    assert clock == sorted(clock)


def streams_of(received: list[Message]) -> list[tuple[dict[str, Any], bytes, list[bytes]]]:
    """``(head, init, fragments)`` of each stream a socket carried, in order."""
    out: list[tuple[dict[str, Any], bytes, list[bytes]]] = []
    at = 0
    while at < len(received):
        kind, head = received[at]
        assert kind == "text", f"message {at} is not a head: {kind}"
        init = received[at + 1][1]
        at += 2
        fragments = []
        while at < len(received) and received[at][0] == "bytes":
            fragments.append(received[at][1])
            at += 1
        out.append((head, init, fragments))
    return out


def after_restart(count: int, heads: int = 2) -> Callable[[list[Message]], bool]:
    """Enough: ``heads`` heads (the first stream's and the next one's; 1 when the first came
    before) and ``count`` fragments after the last of them."""

    def enough(received: list[Message]) -> bool:
        at = [i for i, (kind, _) in enumerate(received) if kind == "text"]
        return len(at) >= heads and len(received) - at[heads - 1] - 2 >= count

    return enough


def decoded(init: bytes, fragments: list[bytes]) -> tuple[list[np.ndarray], list[float]]:
    """The pictures of one stream and its packets' decoding times (s)."""
    with av.open(io.BytesIO(init + b"".join(fragments)), format="mp4") as box:
        stream = box.streams.video[0]
        packets = [p for p in box.demux(stream) if p.size]
        times = [float(p.dts * p.time_base) for p in packets if p.dts is not None]
    with av.open(io.BytesIO(init + b"".join(fragments)), format="mp4") as box:
        frames = [f.to_ndarray(format="bgr24") for f in box.decode(video=0)]
    return frames, times


def test_a_copy_goes_on_with_a_fresh_init_when_the_camera_changes_its_parameter_sets(
    api: ApiFixture, tmp_path: Path
) -> None:
    """The camera switches resolution mid-connection (new SPS in band): the same socket gets a
    new head and init segment holding the new SPS, then the new stream from its keyframe,
    its timestamps going on after the old stream's (the player appends it to its buffer)."""
    import subprocess
    import threading

    from vigil.api import CameraStatus

    streams = []
    for size in ("320x240", "160x120"):
        path = tmp_path / f"{size}.h264"
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
                        f"testsrc=size={size}:rate=10", "-t", "3", "-c:v", "libx264", "-g",
                        "10", "-bf", "0", "-f", "h264", str(path)], check=True)  # fmt: skip
        streams.append(path)
    tap = PacketTap("cam")
    api.runtime.packet_tap = lambda camera: tap  # type: ignore[attr-defined]
    api.runtime.set_status(CameraStatus("cam", True, "running", decode_fps=10.0))
    api.runtime.set_frame("cam", np.zeros((240, 320, 3), np.uint8), time=time.time())
    api.add_user("op", Role.OPERATOR)
    op = api.login("op")
    stop, forced = threading.Event(), threading.Event()
    second_sps = b"".join(
        u for u in annexb_units(streams[1].read_bytes()[:4096]) if u[0] & 0x1F == 7
    )

    token = op.post("/api/cameras/cam/live/unredacted",
                    json={"reason": "incident 15"}).json()["grant"]  # fmt: skip
    with av.open(str(streams[0]), format="h264") as a, \
            av.open(str(streams[1]), format="h264") as b:  # fmt: skip
        tap.start(a.streams.video[0])  # the camera is connected: its view can be copied

        def camera() -> None:  # one connection: the first stream, then the second
            packets = (p for box in (a, b) for p in box.demux(video=0) if p.size)
            for n, packet in enumerate(packets):
                if stop.wait(0.05):
                    break
                packet.pts = packet.dts = n * 120_000  # 10 fps; the raw demuxer stamps none
                tap.publish(packet)
            # A copy that stopped at the change would leave the test waiting: end it, and
            # say so (the test must fail, not hang).
            if not stop.wait(10.0):
                forced.set()
                api.app.state.vigil.video.stop_all()
            tap.end()

        feeder = threading.Thread(target=camera, daemon=True)
        with op.websocket_connect(f"/api/cameras/cam/live.mp4ws?grant={token}") as ws:
            wait_for(lambda: tap.subscribers() > 0, 10, "the copy subscribes")
            feeder.start()
            try:
                received, code = messages(ws, after_restart(10))
            finally:
                stop.set()
                feeder.join(10)
    assert not forced.is_set(), "the copy did not go on over the camera's new parameter sets"
    assert code is None, f"the socket closed ({code}) at the change"
    (head1, init1, fragments1), (head2, init2, fragments2) = streams_of(received)[:2]
    assert head1["mode"] == head2["mode"] == "copy"
    assert head2["codec"].startswith("avc1.")
    assert second_sps
    assert second_sps in init2  # in its avcC
    assert init2 != init1
    frames1, times1 = decoded(init1, fragments1)
    frames2, times2 = decoded(init2, fragments2)
    assert frames1[0].shape[:2] == (240, 320)
    assert frames2[0].shape[:2] == (120, 160)  # the fresh init describes the new stream
    assert len(frames2) >= 9
    # The clock goes on: the new stream starts where the old one ended, not at zero again.
    assert times2[0] >= times1[-1]


def test_a_copied_stream_survives_the_camera_reconnecting(
    tmp_path: Path, camera: RtspRelay, clips_dir: Path
) -> None:
    """The camera's publisher stops and starts again: the recorder reconnects, and the same
    socket goes on with the camera's own slices (the same parameters: no new init segment is
    needed; new ones would bring a new head and init, as the test above shows)."""
    import threading

    with serve(tmp_path, camera, stall_timeout=3.0) as (client, supervisor, state):
        tap = supervisor.packet_tap("door")
        assert tap is not None
        token = client.post("/api/cameras/door/live/unredacted",
                            json={"reason": "incident 17"}).json()["grant"]  # fmt: skip
        watchdog = threading.Timer(150.0, state.video.stop_all)  # fail, never hang
        times: list[float] = []
        with client.websocket_connect(f"{URL}?grant={token}") as ws:
            before, _ = messages(ws, lambda got: len(got) >= 12)
            session = tap.session
            camera.unpublish()
            time.sleep(1.0)
            camera.publish()
            watchdog.start()
            try:
                received, code = messages(ws, resumed(times, 25), times)
            finally:
                watchdog.cancel()
        assert tap.session is not session, "the recorder did not reconnect"
    assert code is None, f"the socket closed ({code}) when the camera reconnected"
    check_resumed(before, received, times, mp4_slices(clips_dir / CLIP))


def test_an_h265_camera_is_re_encoded_and_says_why(api: ApiFixture, tmp_path: Path) -> None:
    """Browsers' MSE here plays H.264: an H.265 camera's granted view is re-encoded."""
    import subprocess

    from vigil.api import CameraStatus
    from vigil.record import Recorder

    require_tools("ffmpeg")
    clip = tmp_path / "hevc.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc=size=320x240:rate=10", "-t", "3", "-c:v", "libx265", "-x265-params",
                    "log-level=error", str(clip)], check=True)  # fmt: skip
    recorder = Recorder(str(clip), "cam", tmp_path / "rec", file_loop=True)
    api.runtime.packet_tap = (  # type: ignore[attr-defined]
        lambda camera: recorder.tap if camera == "cam" else None
    )
    api.runtime.set_status(CameraStatus("cam", True, "running", decode_fps=10.0))
    api.add_user("op", Role.OPERATOR)
    op = api.login("op")
    recorder.start()
    try:
        wait_for(lambda: recorder.tap.session is not None, 30, "the recorder starts")
        token = op.post("/api/cameras/cam/live/unredacted",
                        json={"reason": "incident 16"}).json()["grant"]  # fmt: skip
        api.runtime.set_frame("cam", np.full((240, 320, 3), 90, np.uint8), time=time.time())
        with op.websocket_connect(f"/api/cameras/cam/live.mp4ws?grant={token}") as ws:
            head = json.loads(ws.receive_text())
    finally:
        recorder.close()
    assert head["mode"] == "encode"
    assert "hevc" in head["reason"]
