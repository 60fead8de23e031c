"""Live video benchmark: fps delivered, latency and CPU per redacted live stream.

Run from the repository root::

    python bench/livevideo.py [--cameras 1 4 16] [--seconds 20] [--width 480]
    python bench/livevideo.py --unredacted copy encode [--cameras 1 4]

The API runs under uvicorn in this process over a ``StaticRuntime``; every camera plays the
face clip (``face-demographics-walking.gif``, 480x270) at 15 fps from one thread, forwards
then backwards (``--cuts``: looping with a jump, each a cut that waits for a detection), each frame
stamped with its number in a strip of black/white blocks at the top. One WebSocket client per
camera (``/api/cameras/<cam>/live.mp4ws``, redacted) records when each fragment arrives.
Afterwards each stream is decoded; the stamp of frame k and the arrival of fragment k give
the latency from "frame available to the API" to "fragment at the client" (the capture and
decode before it, and the browser's buffer after it, are not in it: the web test reports the
player's lag), in the steady state (from 3 s after the clients connected); "first fragment":
from a client's connect to its first fragment, which waits for the stream's first face
detection (nothing leaves before it). A frame whose stamp the redaction hid (the strip
changes every frame, so between detections it is a changed region outside every box and is
hidden, ``vigil.privacy.changes``, unless an object is tracked there: the bench puts one
over it) has no latency: "stamps read" says how many were read.
CPU per stream: the process's CPU while streaming less its CPU before any client connected
(the player alone), per stream: it holds the encoder and face-detector threads and the
worker threads of libx264 and ONNX Runtime they use, and the event loop and clients.
"Its threads": the encoder and face-detector threads' own CPU time (``/proc``) per stream,
which leaves those worker threads out.

``--unredacted copy encode``: granted unredacted streams instead, of a camera that is a real
``Recorder`` of ``one-by-one-person-detection.mp4`` (768x432, 10 fps, H.264 Main; a file
camera: paced to real time, looping), whose decoded frames a player thread also sets, as the
analysis would. ``copy``: the runtime hands the API the recorder's ``PacketTap`` (the stream
copy); ``encode``: it does not, so the view is re-encoded from the frames at full width (what
a camera with static masks gets). CPU per stream: the process's CPU while streaming less its
CPU before any stream (recorders and player only), per stream (libx264 encodes in threads of
its own, which the encoder thread's own CPU, also shown, leaves out).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import uvicorn
from websockets.sync.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vigil.api import ApiSettings, CameraStatus, StaticRuntime, create_app
from vigil.api.auth import hash_password
from vigil.config.models import RedactConfig
from vigil.paths import shared_data_dir
from vigil.privacy import build_redactor
from vigil.privacy.redactor import build_face_detector
from vigil.record import Recorder
from vigil.record.tap import PacketTap
from vigil.runtime.view import TrackBox, TrackSnapshot
from vigil.store import Database, Role, UserRepo

FPS = 15.0
FACE_CLIP = "face-demographics-walking.gif"
#: A fixed camera's scene: people come in one by one (``--clip``).
FIXED_CLIP = "one-by-one-person-detection.mp4"
MAX_FRAMES = 450
BITS = 12
CELL = 8


def stamp(frame: np.ndarray, n: int) -> None:
    """Frame number ``n`` in the top strip: ``BITS`` cells, then their complements (so that
    a strip the redaction hid, a changed region outside every box, reads as no number)."""
    for bit in range(2 * BITS):
        on = bool(n >> (bit % BITS) & 1) != (bit >= BITS)
        frame[:CELL, bit * CELL : (bit + 1) * CELL] = 255 if on else 0


def read_stamp(frame: np.ndarray, source_width: int) -> int | None:
    """The number ``stamp`` wrote, read on a frame scaled to ``frame``'s width; None when
    a cell is not clearly black or white or a bit disagrees with its complement."""
    scale = frame.shape[1] / source_width
    bits = []
    for b in range(2 * BITS):
        x0, x1 = round((b * CELL + 2) * scale), round(((b + 1) * CELL - 2) * scale)
        value = float(frame[round(2 * scale) : round((CELL - 2) * scale), x0:x1].mean())
        if 60 < value < 195:
            return None
        bits.append(value >= 195)
    if any(bits[b] == bits[b + BITS] for b in range(BITS)):
        return None
    return sum(1 << b for b in range(BITS) if bits[b])


def thread_cpu(tid: int) -> float:
    try:
        fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_cpu(seconds: float) -> float:
    """The process's CPU (cores) over ``seconds`` before any stream: the player (and
    recorders) alone. A stream's cost is the process's CPU above it, because libx264's and
    ONNX Runtime's worker threads are not the encoder's or face detector's thread."""
    cpu0, wall0 = time.process_time(), time.time()
    time.sleep(seconds)
    return (time.process_time() - cpu0) / (time.time() - wall0)


def clip_frames(name: str) -> list[np.ndarray]:
    """The clip's frames as a 480x270 sub-stream gives them (at most ``MAX_FRAMES``)."""
    with av.open(str(shared_data_dir() / "clips" / name)) as box:
        frames = []
        for f in box.decode(video=0):
            frames.append(f.to_ndarray(format="bgr24", width=480, height=270))
            if len(frames) >= MAX_FRAMES:
                break
    return frames


def run(cameras: int, seconds: float, width: int, root: Path, cuts: bool, *,
        clip: str = FACE_CLIP) -> dict[str, float]:  # fmt: skip
    frames = clip_frames(clip)
    if not cuts:  # forwards then backwards: no jump at the loop, as a real camera
        frames += frames[-2:0:-1]
    db = Database(f"sqlite:///{root / f'bench{cameras}.db'}")
    db.migrate()
    with db.session() as session:
        UserRepo(session).add("bench", Role.VIEWER, hash_password("correct horse battery"))
    names = [f"cam{i:02d}" for i in range(cameras)]
    runtime = StaticRuntime({n: CameraStatus(n, True, "running", decode_fps=FPS) for n in names})
    # The stamp strip changes every frame: left as it is, it is a changed region outside
    # every box between detections and is hidden (``vigil.privacy.changes``), stamp and all.
    # A tracked object over it (a sign, say) is one the face search looked at, in which a
    # change is no one new: the strip stays readable and the rest of the picture is
    # redacted as ever.
    height = frames[0].shape[0]
    width = frames[0].shape[1]
    strip = TrackBox(1, "sign", 1.0, (0.0, 0.0, (2 * BITS + 2) * CELL / width, 4 * CELL / height))
    for name in names:
        runtime.set_tracks(name, TrackSnapshot(time=time.time(), width=width, height=height,
                                               tracks=(strip,)))  # fmt: skip
    faces = build_face_detector(RedactConfig(), threads=1)
    app = create_app(
        ApiSettings(secure_cookies=False),
        db,
        runtime,
        data_dir=root / "data",
        redactor_factory=lambda c, s: build_redactor(c, s, face_detector=faces),
    )
    port = 18000 + cameras
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))  # fmt: skip
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    from fastapi.testclient import TestClient

    token = TestClient(app).post(
        "/api/login", json={"name": "bench", "password": "correct horse battery"}
    )
    cookie = token.cookies["vigil_session"]
    set_times: dict[int, float] = {}
    stop = threading.Event()

    def play() -> None:
        n, start = 0, time.monotonic()
        while not stop.is_set():
            frame = frames[n % len(frames)].copy()
            stamp(frame, n % (1 << BITS))
            set_times[n % (1 << BITS)] = time.monotonic()
            for name in names:
                runtime.set_frame(name, frame, time=time.time())
            n += 1
            stop.wait(max(0.0, start + n / FPS - time.monotonic()))

    results: dict[str, tuple[bytes, list[bytes], list[float], float]] = {}

    def client(name: str) -> None:
        url = f"ws://127.0.0.1:{port}/api/cameras/{name}/live.mp4ws?width={width}"
        opened = time.monotonic()
        with connect(url, additional_headers={"Cookie": f"vigil_session={cookie}"},
                     max_size=None) as ws:  # fmt: skip
            ws.recv()
            init = bytes(ws.recv())  # type: ignore[arg-type]
            fragments: list[bytes] = []
            arrivals: list[float] = []
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                fragments.append(bytes(ws.recv()))  # type: ignore[arg-type]
                arrivals.append(time.monotonic())
        results[name] = (init, fragments, arrivals, opened)

    threading.Thread(target=play, daemon=True).start()
    baseline = idle_cpu(3.0)
    clients = [threading.Thread(target=client, args=(n,)) for n in names]
    for c in clients:
        c.start()
    # let every stream pass its first detection, then measure CPU over the streaming
    time.sleep(3)
    steady_from = time.monotonic()
    video = app.state.vigil.video
    tids = [e._thread.native_id for e in video.encoders().values()]
    carried = [c for e in video.encoders().values() for c in e._carried]
    tids += [c._thread.native_id for c in carried]
    cpu0, proc0, wall0 = sum(thread_cpu(t) for t in tids if t), time.process_time(), time.time()
    time.sleep(max(1.0, seconds - 4))
    cpu1, proc1, wall1 = sum(thread_cpu(t) for t in tids if t), time.process_time(), time.time()
    detections = sum(c.detections for c in carried if c.what == "face")
    for c in clients:
        c.join()
    stop.set()
    server.should_exit = True
    fps, lat, first = [], [], []
    unreadable = 0
    for init, fragments, arrivals, opened in results.values():
        first.append(arrivals[0] - opened)
        with av.open(io.BytesIO(init + b"".join(fragments)), format="mp4") as box:
            decoded = [f.to_ndarray(format="bgr24") for f in box.decode(video=0)]
        span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 1.0
        fps.append((len(arrivals) - 1) / span)
        for frame, arrived in zip(decoded, arrivals, strict=False):
            number = read_stamp(frame, frames[0].shape[1])
            if number is None:
                unreadable += 1
                continue
            sent = set_times.get(number)
            # Steady state only: the first fragments wait for the stream's first face
            # detection (nothing leaves unredacted), which ``first_ms`` reports instead.
            if sent is not None and 0 <= arrived - sent < 5 and arrived >= steady_from:
                lat.append(arrived - sent)
    wall = wall1 - wall0
    db.close()
    lat.sort()
    return {
        "cameras": cameras, "fps_min": min(fps), "fps_mean": statistics.mean(fps),
        "lat_p50_ms": 1000 * lat[len(lat) // 2], "lat_p95_ms": 1000 * lat[int(len(lat) * 0.95)],
        "cpu_stream_pct": 100 * ((proc1 - proc0) / wall - baseline) / cameras,
        "cpu_thread_pct": 100 * (cpu1 - cpu0) / wall / cameras,
        "cpu_process_pct": 100 * (proc1 - proc0) / wall,
        "cpu_baseline_pct": 100 * baseline,
        "face_hz_per_cam": detections / cameras / (wall1 - wall0 + 3),
        "first_ms": 1000 * max(first),
        "stamps_read": 1 - unreadable / max(1, sum(len(r[1]) for r in results.values())),
    }  # fmt: skip


COPY_CLIP = "one-by-one-person-detection.mp4"


class TapRuntime(StaticRuntime):
    """A StaticRuntime whose cameras' recorders hand out their packet taps (``PacketTaps``)."""

    def __init__(self, statuses: dict[str, CameraStatus], taps: dict[str, PacketTap]) -> None:
        super().__init__(statuses)
        self.taps = taps

    def packet_tap(self, camera: str) -> PacketTap | None:
        return self.taps.get(camera)


def run_unredacted(mode: str, cameras: int, seconds: float, root: Path) -> dict[str, float]:
    """Granted unredacted streams, copied or re-encoded (see the module docstring)."""
    from fastapi.testclient import TestClient

    clip = shared_data_dir() / "clips" / COPY_CLIP
    with av.open(str(clip)) as box:
        frames = [f.to_ndarray(format="bgr24") for f in box.decode(video=0)]
        fps = float(box.streams.video[0].average_rate or 10)
    names = [f"cam{i:02d}" for i in range(cameras)]
    recorders = [Recorder(str(clip), n, root / mode, file_loop=True) for n in names]
    statuses = {n: CameraStatus(n, True, "running", decode_fps=fps) for n in names}
    runtime = (TapRuntime(statuses, {r.segmenter.camera: r.tap for r in recorders})
               if mode == "copy" else StaticRuntime(statuses))  # fmt: skip
    db = Database(f"sqlite:///{root / f'unredacted-{mode}{cameras}.db'}")
    db.migrate()
    with db.session() as session:
        UserRepo(session).add("bench", Role.OPERATOR, hash_password("correct horse battery"))
    app = create_app(ApiSettings(secure_cookies=False, job_workers=0), db, runtime,
                     data_dir=root / "data")  # fmt: skip
    port = 18100 + cameras + (50 if mode == "copy" else 0)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))  # fmt: skip
    threading.Thread(target=server.run, daemon=True).start()
    for recorder in recorders:
        recorder.start()
    while not server.started or any(r.tap.session is None for r in recorders):
        time.sleep(0.05)
    http = TestClient(app)
    login = http.post("/api/login", json={"name": "bench", "password": "correct horse battery"})
    http.headers["X-CSRF-Token"] = login.json()["csrf_token"]
    cookie = login.cookies["vigil_session"]
    grants = {}
    for n in names:
        reply = http.post(f"/api/cameras/{n}/live/unredacted", json={"reason": "benchmark"})
        grants[n] = reply.json()["grant"]
    stop = threading.Event()

    def play() -> None:
        n, start = 0, time.monotonic()
        while not stop.is_set():
            for name in names:
                runtime.set_frame(name, frames[n % len(frames)], time=time.time())
            n += 1
            stop.wait(max(0.0, start + n / fps - time.monotonic()))

    counts: dict[str, tuple[int, float, str]] = {}

    def client(name: str) -> None:
        url = (f"ws://127.0.0.1:{port}/api/cameras/{name}/live.mp4ws?width=768"
               f"&grant={grants[name]}")  # fmt: skip
        with connect(url, additional_headers={"Cookie": f"vigil_session={cookie}"},
                     max_size=None) as ws:  # fmt: skip
            head = str(ws.recv())
            ws.recv()
            got, first = 0, time.monotonic()
            deadline = first + seconds
            while time.monotonic() < deadline:
                ws.recv()
                got += 1
        counts[name] = (got, time.monotonic() - first, head)

    threading.Thread(target=play, daemon=True).start()
    baseline = idle_cpu(max(3.0, seconds / 2))
    clients = [threading.Thread(target=client, args=(n,)) for n in names]
    for c in clients:
        c.start()
    time.sleep(3)
    video = app.state.vigil.video
    tids = [e._thread.native_id for e in video.encoders().values()]
    modes = {e.mode for e in video.encoders().values()}
    cpu0, proc0, wall0 = sum(thread_cpu(t) for t in tids if t), time.process_time(), time.time()
    time.sleep(max(1.0, seconds - 4))
    cpu1, proc1, wall1 = sum(thread_cpu(t) for t in tids if t), time.process_time(), time.time()
    for c in clients:
        c.join()
    stop.set()
    server.should_exit = True
    for recorder in recorders:
        recorder.close()
    db.close()
    assert modes == {mode}, f"asked for {mode}, ran {modes}"
    wall = wall1 - wall0
    return {
        "cameras": cameras,
        "fps_mean": statistics.mean(got / span for got, span, _ in counts.values()),
        "cpu_thread_pct": 100 * (cpu1 - cpu0) / wall / cameras,
        "cpu_stream_pct": 100 * ((proc1 - proc0) / wall - baseline) / cameras,
        "cpu_process_pct": 100 * (proc1 - proc0) / wall,
        "cpu_baseline_pct": 100 * baseline,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cameras", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--width", type=int, default=480)
    parser.add_argument(
        "--cuts",
        action="store_true",
        help="loop the clip with a jump (a cut every 2.3 s) instead of to and fro",
    )
    parser.add_argument(
        "--clip",
        default=FACE_CLIP,
        help=f"the scene of the redacted streams: {FACE_CLIP} (two people walking up to "
        f"the camera, the default) or {FIXED_CLIP} (a fixed camera, people one by one), "
        "as a 480x270 sub-stream",
    )
    parser.add_argument("--json", type=Path, help="also write the results (a list) here")
    parser.add_argument(
        "--unredacted",
        nargs="+",
        choices=["copy", "encode"],
        help="granted unredacted streams: stream copy and/or re-encoding",
    )
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    if args.unredacted:
        print(
            f"CPUs: {os.cpu_count()}; {COPY_CLIP} (768x432, H.264 Main) as a recorded "
            "file camera; unredacted at full size"
        )
        print(
            "| mode | cameras | fps mean | CPU/stream % | its thread % | process CPU % | "
            "without streams % |"
        )
        print("|---|---|---|---|---|---|---|")
        with tempfile.TemporaryDirectory() as tmp:
            for n in args.cameras:
                for mode in args.unredacted:
                    r = run_unredacted(mode, n, args.seconds, Path(tmp))
                    rows.append({"mode": mode, **r})
                    print(
                        f"| {mode} | {n} | {r['fps_mean']:.1f} | {r['cpu_stream_pct']:.1f} | "
                        f"{r['cpu_thread_pct']:.1f} | {r['cpu_process_pct']:.0f} | "
                        f"{r['cpu_baseline_pct']:.0f} |",
                        flush=True,
                    )
        write_json(args.json, rows)
        return
    print(f"CPUs: {os.cpu_count()}; {args.clip} as 480x270 @ {FPS:g} fps; output width "
          f"{args.width}")  # fmt: skip
    print(
        "| cameras | fps min | fps mean | latency p50 ms | p95 ms | CPU/stream % | "
        "its threads % | process CPU % | face det. Hz/cam | first fragment ms | stamps read % |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.cameras:
            r: dict[str, Any] = run(
                n, args.seconds, args.width, Path(tmp), args.cuts, clip=args.clip
            )
            rows.append({"mode": "redacted", **r})
            print(
                f"| {n} | {r['fps_min']:.1f} | {r['fps_mean']:.1f} | {r['lat_p50_ms']:.0f} | "
                f"{r['lat_p95_ms']:.0f} | {r['cpu_stream_pct']:.0f} | "
                f"{r['cpu_thread_pct']:.0f} | {r['cpu_process_pct']:.0f} | "
                f"{r['face_hz_per_cam']:.1f} | "
                f"{r['first_ms']:.0f} | {100 * r['stamps_read']:.0f} |",
                flush=True,
            )
    write_json(args.json, rows)


def write_json(path: Path | None, rows: list[dict[str, Any]]) -> None:
    if path is not None:
        path.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
