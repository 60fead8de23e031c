"""Faults of the camera stream itself: a resolution change mid-stream, corrupt packets.

A real ``Supervisor`` (model-free motion analysis, a line in normalised coordinates, 2 s
continuous segments into a real SQLite database) reads real ``ffmpeg`` publishers (MPEG-TS
over UDP, as ``test_disk_full``: one port for the analysis input, one for the recorded one,
no relay process to starve on a loaded machine):

- **Resolution change**: the camera is reconfigured from 320x180 to 480x270 and back without
  dropping the connection (two encodings of the shared clip, concatenated as one stream,
  looped). Wanted: analysis goes on at the new size with its rules rebuilt for it (they are
  in pixels inside the pipeline: a line at the middle stays at the middle), no crash loop
  (no worker restart), and recording starts a new segment at the change: no MP4 mixes two
  sizes (a player would show the second part wrong or not at all).
- **Corrupt packets**: the publisher damages the H.264 data (``-bsf:v noise``). Wanted: the
  decoder errors are counted (``CameraStatus.decode_errors``, ``vigil_camera_decode_errors``
  on ``/metrics``) and logged without flooding, and the camera keeps going: frames analysed,
  segments written, no restart.

Both run with the camera analysed in a thread and in a worker process (``workers``): there
the handle is the worker's ``RemoteCamera``, so what the test reads of the pipeline comes
through its reports (status, frames, restarts, the tracks' frame size), and the worker's log
through its standard error (``capfd``).
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import av
import pytest

pytest.importorskip("sqlalchemy", reason="the server extra is not installed")

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.registry import Collector

from tests.rtsp_relay import require_tools
from tests.runtime.serve_process import CLIP, UdpCameras, wait_for
from vigil.api.metrics import _camera_families
from vigil.config.models import VigilConfig
from vigil.ingest import Backoff
from vigil.runtime.serve import Supervisor
from vigil.runtime.worker import CameraWorker
from vigil.store import Database, SegmentRepo

SIZES = ((320, 180), (480, 270))
#: One stream per input of the camera, named by its role.
ROLES = ("detect", "record")


@pytest.fixture
def two_sizes(clips_dir: Path, tmp_path: Path) -> Path:
    """6 s of the clip at 320x180, then the next 6 s at 480x270: one MPEG-TS stream whose
    resolution changes at a keyframe, as a reconfigured camera's does."""
    require_tools("ffmpeg")
    folder = tmp_path / "sizes"
    folder.mkdir()
    parts = []
    for n, (width, height) in enumerate(SIZES):
        part = folder / f"{n}.ts"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-ss", str(6 * n), "-t", "6",
             "-i", str(clips_dir / CLIP), "-vf", f"scale={width}:{height}", "-an",
             "-c:v", "libx264", "-preset", "ultrafast", "-g", "10", "-f", "mpegts", str(part)],
            check=True, timeout=300,
        )  # fmt: skip
        parts.append(part.read_bytes())
    joined = folder / "two-sizes.ts"
    joined.write_bytes(b"".join(parts))
    return joined


def supervisor_for(tmp_path: Path, streams: UdpCameras, workers: int = 0
                   ) -> tuple[Supervisor, Database]:  # fmt: skip
    config = VigilConfig.model_validate({
        "detect": {"model": "motion", "fps": 5},
        "data_dir": str(tmp_path / "data"),
        "record": {"mode": "continuous", "segment_seconds": 2.0},
        "lines": {"middle": {"points": [[0.5, 0.0], [0.5, 1.0]]}},
        "cameras": {"cam": {"sources": [
            {"url": streams.url("detect"), "roles": ["detect"]},
            {"url": streams.url("record"), "roles": ["record"]},
        ]}},
    })  # fmt: skip
    db = Database(f"sqlite:///{tmp_path / 'vigil.db'}")
    db.migrate()
    # A partial, not a lambda: a worker process gets it pickled.
    backoff = functools.partial(Backoff, initial=0.3, factor=2.0, max=1.0, jitter=0.0)
    return Supervisor(
        config, db=db, backoff=backoff, stall_timeout=5.0, worker_processes=workers
    ), db


def segment_sizes(supervisor: Supervisor, db: Database) -> dict[str, set[tuple[int, int]]]:
    """The frame sizes in each indexed segment, by path."""
    with db.session() as session:
        paths = [r.path for r in SegmentRepo(session).list("cam")]
    found = {}
    for rel in paths:
        with av.open(str(supervisor.root / rel)) as container:
            video = container.streams.video[0]
            found[rel] = {(f.width, f.height) for f in container.decode(video)}
    return found


def check_pipeline(worker: object) -> None:
    """The thread's pipeline and rules follow the new size (the line stays in the middle)."""
    assert isinstance(worker, CameraWorker)
    assert worker.resolution_changes >= 2
    pipeline = worker.pipeline
    assert pipeline is not None
    latest = worker._last_frame
    assert latest is not None
    size = (latest.width, latest.height)
    assert pipeline.frame_size == size, "the pipeline kept the old size"
    assert pipeline.rules.frame_size == size, "the rules kept the old size"
    line = pipeline.rules._lines["middle"]
    assert line._a[0] == pytest.approx(size[0] / 2, abs=1), "the line left the middle"


WORKERS = pytest.mark.parametrize("workers", [0, 1], ids=["threads", "processes"])


@pytest.mark.slow
@WORKERS
def test_a_camera_changing_resolution_mid_stream(
    tmp_path: Path, two_sizes: Path, caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str], workers: int,
) -> None:  # fmt: skip
    streams = UdpCameras(two_sizes, ROLES)
    supervisor, db = supervisor_for(tmp_path, streams, workers)
    supervisor.start()
    handle = supervisor.workers["cam"]
    analysed: list[tuple[int, int]] = []  # the size of each frame analysed, as reported

    def size_changes() -> int:
        size = handle.latest_tracks()
        if size.width and (not analysed or analysed[-1] != (size.width, size.height)):
            analysed.append((size.width, size.height))
        return len(analysed) - 1

    try:
        wait_for(lambda: size_changes() >= 2, 120,
                 "the analysis did not see the picture change size twice")  # fmt: skip
        assert set(analysed) == set(SIZES), analysed
        frames = handle.frames
        wait_for(lambda: handle.frames > frames + 20, 60, "analysis stopped after the change")
        wait_for(lambda: {s for f in segment_sizes(supervisor, db).values() for s in f}
                 >= set(SIZES), 120, "no segments of both sizes")  # fmt: skip
        if not workers:  # in a worker process, the pipeline is out of reach: its reports do
            check_pipeline(handle)
        assert handle.restarts == 0, "a crash loop"
    finally:
        supervisor.stop()
        streams.stop()
        sizes = segment_sizes(supervisor, db)
        db.close()
    mixed = {path: found for path, found in sizes.items() if len(found) > 1}
    assert mixed == {}, f"segments mixing two sizes: {mixed}"
    assert "the picture changed from" in caplog.text + capfd.readouterr().err


@pytest.fixture
def noisy(two_sizes: Path) -> Path:
    """The first part of ``two_sizes`` (one size) with about one byte in 300 of the H.264
    data garbled (``-bsf:v noise``), done once: garbling live, the MPEG-TS muxer may refuse
    a packet whose start code was hit and stop."""
    out = two_sizes.with_name("noisy.ts")
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(two_sizes.with_name("0.ts")), "-c", "copy",
         "-bsf:v", "noise=amount=300", "-f", "mpegts", str(out)],
        check=True, timeout=300,
    )  # fmt: skip
    return out


@pytest.mark.slow
@WORKERS
def test_corrupt_packets_are_counted_and_the_camera_goes_on(
    tmp_path: Path, noisy: Path, caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str], workers: int,
) -> None:  # fmt: skip
    streams = UdpCameras(noisy, ROLES)
    supervisor, db = supervisor_for(tmp_path, streams, workers)
    supervisor.start()
    worker = supervisor.workers["cam"]

    def segments() -> int:
        with db.session() as session:
            return len(SegmentRepo(session).list("cam"))

    def errors_now() -> int:
        return worker.status().decode_errors  # the worker process's count, as reported

    try:
        wait_for(lambda: errors_now() >= 3, 120, "no corrupt packet was counted")
        frames, errors = worker.frames, errors_now()
        wait_for(lambda: worker.frames > frames + 50 and errors_now() > errors, 120,
                 "the camera did not go on through more corrupt packets")  # fmt: skip
        wait_for(lambda: segments() >= 2, 60, "nothing was recorded")
        (status,) = supervisor.cameras()
        assert status.online, status
        assert status.decode_errors >= 3, status
        assert worker.restarts == 0, "a crash loop"
    finally:
        supervisor.stop()
        streams.stop()
        db.close()
    registry = CollectorRegistry(auto_describe=False)

    class One(Collector):
        def collect(self):  # type: ignore[no-untyped-def]
            yield from _camera_families([status])

    registry.register(One())
    text = generate_latest(registry).decode()
    assert (
        f'vigil_camera_decode_errors_total{{camera="cam"}} {float(status.decode_errors)}' in text
    ), text
    logged = [r.getMessage() for r in caplog.records] + capfd.readouterr().err.splitlines()
    warnings = [line for line in logged if "decode errors so far" in line]
    assert warnings, "the corrupt packets were not logged"
    assert len(warnings) <= 1 + status.decode_errors // 100, "one line per corrupt packet"
