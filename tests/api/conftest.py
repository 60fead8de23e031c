"""API fixtures: a real SQLite database in tmp_path, real MP4 segments, real CenterFace.

``api`` builds the app with ``StaticRuntime`` (cameras ``front`` and ``back``) and plain-HTTP
cookies; ``Api.login`` logs a client in and sets its CSRF header. Users are created through
the store with real Argon2id hashes. The PostgreSQL server fixture is the store suite's.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the server extra is not installed")

from fastapi import FastAPI

with warnings.catch_warnings():
    # Starlette prefers httpx2 and warns when only httpx is there; either works for tests.
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

from tests.store.conftest import own_pg, pg_server  # noqa: F401 (re-exported fixtures)
from vigil.api import ApiSettings, CameraStatus, StaticRuntime, create_app
from vigil.api.auth import hash_password
from vigil.config.models import RedactConfig
from vigil.privacy import FaceDetector, Redactor, build_redactor
from vigil.privacy.redactor import build_face_detector
from vigil.record.layout import segment_path
from vigil.store import Database, Role, SegmentRepo, UserRepo

PASSWORD = "correct horse battery"
T0 = 1_714_564_800.0  # 2024-05-01T12:00:00Z


@pytest.fixture(scope="session")
def face_detector() -> FaceDetector:
    """CenterFace, loaded once for the whole session (loading is the slow part)."""
    return build_face_detector(RedactConfig())


def make_mp4(path: Path, *, seconds: float = 2.0, fps: int = 10, size: tuple[int, int] = (96, 64),
             seed: int = 0) -> Path:  # fmt: skip
    """A real H.264 MP4 of moving noise (``size`` = width, height)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, fps)
        for i in range(int(seconds * fps)):
            image = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


@dataclass
class Api:
    app: FastAPI
    db: Database
    runtime: StaticRuntime
    data_dir: Path
    clients: list[TestClient] = field(default_factory=list)

    def close(self) -> None:
        """Close the clients and stop the job workers (a render left running in a daemon
        thread would abort the interpreter at exit)."""
        for client in self.clients:
            client.close()
        jobs = self.app.state.vigil.jobs
        if jobs is not None:
            jobs.stop(timeout=60)

    def client(self, **kwargs: object) -> TestClient:
        client = TestClient(self.app, **kwargs)  # type: ignore[arg-type]
        self.clients.append(client)
        return client

    def add_user(self, name: str, role: Role, cameras: list[str] | None = None) -> None:
        with self.db.session() as session:
            UserRepo(session).add(name, role, hash_password(PASSWORD), cameras=cameras)

    def login(self, name: str, role: Role | None = None, *, cameras: list[str] | None = None,
              ) -> TestClient:  # fmt: skip
        """A client logged in as ``name`` (created with ``role`` first when given)."""
        if role is not None:
            self.add_user(name, role, cameras)
        client = self.client()
        reply = client.post("/api/login", json={"name": name, "password": PASSWORD})
        assert reply.status_code == 200, reply.text
        client.headers["X-CSRF-Token"] = reply.json()["csrf_token"]
        return client

    def add_segment(self, camera: str, start: float, *, seconds: float = 2.0) -> tuple[int, Path]:
        path = make_mp4(segment_path(self.data_dir / "recordings", camera, start),
                        seconds=seconds)  # fmt: skip
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        with self.db.session() as session:
            row = SegmentRepo(session).add(
                camera=camera, path=path.relative_to(self.data_dir).as_posix(), start=start,
                end=start + seconds, size=path.stat().st_size, sha256=digest,
            )  # fmt: skip
        return row.id, path


def wait_job(client: TestClient, job: dict[str, object], *, deadline_s: float = 300.0
             ) -> dict[str, object]:  # fmt: skip
    """The job (a ``JobOut`` body) polled at its ``url`` until it is done or failed."""
    deadline = time.monotonic() + deadline_s
    while job["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, f"job still {job['state']} after {deadline_s} s"
        time.sleep(0.1)
        reply = client.get(str(job["url"]))
        assert reply.status_code == 200, reply.text
        job = reply.json()
    return job


def build_api(db: Database, data_dir: Path,
              factory: Callable[[RedactConfig, tuple[int, int]], Redactor],
              **settings: object) -> Api:  # fmt: skip
    frame = np.full((64, 96, 3), 127, np.uint8)
    runtime = StaticRuntime(
        {"front": CameraStatus("front", True, "running", decode_fps=15.0, detect_fps=5.0,
                               last_frame_time=T0, skipped_frames=3, inference_ms=14.0,
                               queue_depth=1),
         "back": CameraStatus("back", False, "backoff")},
        frames={"front": frame, "back": frame},
    )  # fmt: skip
    options: dict[str, object] = {"secure_cookies": False, **settings}
    app = create_app(ApiSettings(**options), db, runtime, data_dir=data_dir,  # type: ignore[arg-type]
                     redactor_factory=factory)  # fmt: skip
    return Api(app, db, runtime, data_dir)


@pytest.fixture
def api(tmp_path: Path, face_detector: FaceDetector) -> Iterator[Api]:
    db = Database(f"sqlite:///{tmp_path / 'vigil.db'}")
    db.migrate()

    def factory(config: RedactConfig, size: tuple[int, int]) -> Redactor:
        return build_redactor(config, size, face_detector=face_detector)

    built = build_api(db, tmp_path / "data", factory)
    yield built
    built.close()
    db.close()
