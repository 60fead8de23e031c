"""Event-clip benchmark: time from an event's end to its clip being ready, render speed, and
how long opening a clip takes, for the background job path vs the old in-request cut.

Run from the repository root::

    python bench/clips.py [--seconds 17] [--fps 15]

Input: the shared "one-by-one person" clip scaled to 640x360 at ``--fps``, recorded as 10 s
segments of camera ``front`` in a fresh SQLite store; one event spans it (with the default
5 s pre/post-roll the clip is ``--seconds`` long). Both paths render the same span with the
same CenterFace detector (loaded before any clock starts), in one run:

- in-request (before): the whole frame searched for faces on every frame, inside the request
  that opens the clip: what a viewer waited for before the first frame;
- job (now): the clip job queued by ``ClipJobSink`` when the event ends, faces searched by
  regions (``vigil.privacy.regions``), then the clip served from the cache.

Printed: render speed as x real time (clip seconds / render seconds) for both and their ratio,
event end -> clip ready for the job, the time to the first byte of a cached clip, and faces
YuNet (an independent detector) still finds in each output (both should be about zero).
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import av
import cv2

from vigil.api import ApiSettings, CameraStatus, StaticRuntime, create_app
from vigil.api.auth import hash_password
from vigil.api.clips import ClipJobSink, clip_span
from vigil.config.models import RedactConfig
from vigil.paths import shared_data_dir, shared_models_dir
from vigil.privacy import Redactor, build_redactor
from vigil.privacy.redactor import build_face_detector
from vigil.record.export import export_range
from vigil.record.layout import segment_path
from vigil.record.signing import load_or_create_key
from vigil.store import Database, EventRepo, JobRepo, Role, SegmentRepo, UserRepo
from vigil.store.sink import StoreEventSink
from vigil.types import Event, EventState

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

SOURCE = "one-by-one-person-detection.mp4"
T0 = 1_714_564_800.0
SEGMENT_S = 10.0
ROLL_S = 5.0


def record(source: Path, data: Path, db: Database, seconds: float, fps: int) -> None:
    """``seconds`` of ``source`` at 640x360 as ``SEGMENT_S`` segments of ``front`` from T0."""
    start = 0.0
    while start < seconds:
        length = min(SEGMENT_S, seconds - start)
        out = segment_path(data / "recordings", "front", T0 + start)
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-ss", str(20 + start), "-t", str(length),
                        "-i", str(source), "-vf", f"scale=640:360,fps={fps}", "-an",
                        "-c:v", "libx264", "-g", str(2 * fps), "-pix_fmt", "yuv420p", str(out)],
                       check=True)  # fmt: skip
        with db.session() as session:
            SegmentRepo(session).add(
                camera="front", path=out.relative_to(data).as_posix(), start=T0 + start,
                end=T0 + start + length, size=out.stat().st_size,
                sha256=hashlib.sha256(out.read_bytes()).hexdigest())  # fmt: skip
        start += length


def yunet_faces(video: Path) -> int:
    model = shared_models_dir() / "yunet_face_640.onnx"
    if not model.is_file():
        return -1
    detector: Any = None
    faces = 0
    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            image = frame.to_ndarray(format="bgr24")
            if detector is None:
                h, w = image.shape[:2]
                detector = cv2.FaceDetectorYN.create(str(model), "", (w, h), 0.6, 0.3)
            _, found = detector.detect(image)
            faces += 0 if found is None else len(found)
    return faces


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=17.0, help="clip length (s)")
    parser.add_argument("--fps", type=int, default=15)
    args = parser.parse_args()
    source = shared_data_dir() / "clips" / SOURCE
    if not source.is_file():
        print(f"missing {source}; set VIGIL_SHARED_DIR", file=sys.stderr)
        return 2
    config = RedactConfig()
    faces = build_face_detector(config)

    def factory(size: tuple[int, int]) -> Redactor:
        return build_redactor(config, size, face_detector=faces)

    def camera_factory(camera_config: RedactConfig, size: tuple[int, int]) -> Redactor:
        return build_redactor(camera_config, size, face_detector=faces)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = root / "data"
        db = Database(f"sqlite:///{root / 'vigil.db'}")
        db.migrate()
        record(source, data, db, args.seconds + 1.0, args.fps)
        # The event: the clip span is the event +- the roll, starting at T0.
        event = Event("bench", "front", "person", 0, 1, T0 + ROLL_S, T0 + args.seconds - ROLL_S,
                      EventState.END, live=True, has_clip=True)  # fmt: skip
        StoreEventSink(db).publish(event)
        with db.session() as session:
            UserRepo(session).add("val", Role.VIEWER, hash_password("bench password"))
            segments = SegmentRepo(session).list("front")
        runtime = StaticRuntime({"front": CameraStatus("front", True, "running")})
        app = create_app(ApiSettings(secure_cookies=False), db, runtime, data_dir=data,
                         redactor_factory=camera_factory)  # fmt: skip
        state = app.state.vigil
        with db.session() as session:
            row = EventRepo(session).get("bench")
        assert row is not None
        start, end = clip_span(state, row)  # the same span on both paths
        clip_s = end - start

        # Before: the in-request cut (full-frame face search on every frame).
        old = root / "old.mp4"
        began = time.perf_counter()
        export_range([data / s.path for s in segments], start, end, old,
                     key=load_or_create_key(state.signing_key_path), redactor_factory=factory,
                     camera="front", starts=[s.start for s in segments])  # fmt: skip
        old_s = time.perf_counter() - began

        # Now: the job queued as the event ends, then the clip opened from the cache.
        ended = time.perf_counter()
        ClipJobSink(db, on_queued=state.wake_jobs).publish(event)
        with db.session() as session:
            (job,) = JobRepo(session).list(kind="clip")
        while True:
            with db.session() as session:
                done = JobRepo(session).get(job.id)
            assert done is not None
            if done.state in ("done", "failed"):
                break
            time.sleep(0.02)
        ready_s = time.perf_counter() - ended
        if done.state != "done":
            print(f"clip job failed: {done.error}", file=sys.stderr)
            return 1
        render_s = (done.finished or 0) - (done.started or 0)
        client = TestClient(app)
        login = client.post("/api/login", json={"name": "val", "password": "bench password"})
        client.headers["X-CSRF-Token"] = login.json()["csrf_token"]
        began = time.perf_counter()
        reply = client.get("/api/events/bench/clip", headers={"Range": "bytes=0-65535"})
        open_s = time.perf_counter() - began
        new = state.clips_dir / "front" / str(done.result["file"] if done.result else "")
        assert reply.status_code == 206, reply.status_code
        client.close()
        if state.jobs is not None:
            state.jobs.stop()

        old_x, new_x = clip_s / old_s, clip_s / render_s
        print(
            f"clip: {clip_s:.1f} s of 640x360 at {args.fps} fps, {len(segments)} segments, "
            f"CenterFace, 2 threads"
        )
        print(f"{'path':<34}{'render s':>10}{'x real time':>13}{'YuNet faces':>13}")
        print(
            f"{'in-request, whole frame (before)':<34}{old_s:>10.2f}{old_x:>13.2f}"
            f"{yunet_faces(old):>13}"
        )
        print(
            f"{'job, face search by regions (now)':<34}{render_s:>10.2f}{new_x:>13.2f}"
            f"{yunet_faces(new):>13}"
        )
        print(f"render speed ratio now/before: {new_x / old_x:.2f}x")
        print(f"event end -> clip ready (job queued, claimed, rendered): {ready_s:.2f} s")
        print(
            f"opening the ready clip (first 64 KiB, HTTP, audited): {open_s * 1000:.0f} ms "
            f"(before: the whole in-request cut, {old_s:.1f} s)"
        )
        db.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
