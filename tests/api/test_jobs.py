"""Clips and exports as background jobs: an ended event's clip is rendered before anyone asks,
jobs survive a restart, a waited-for clip jumps the queue, exports are limited per user, and
an export's lifecycle (POST -> job -> progress -> download) gives a file that starts playing
at once (``moov`` first) with a keyframe at least every 2 s."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import av
import pytest

from tests.api.conftest import T0, Api, build_api, wait_job
from tests.api.test_clips import ROLL, faces_mp4, fetch_clip, record_faces  # noqa: F401 (fixtures)
from tests.api.test_clips import clips_dir as clips_dir  # noqa: PLC0414 (session fixture)
from tests.api.test_events import add_event
from vigil.api.app import JOB_HANDLERS
from vigil.api.clips import ClipJobSink, event_clip
from vigil.api.jobs import PRIORITY_BACKGROUND, JobRunner
from vigil.api.routes import events as events_routes
from vigil.config.models import RedactConfig
from vigil.privacy import FaceDetector, Redactor, build_redactor
from vigil.record.export import verify_export
from vigil.record.signing import load_or_create_key
from vigil.store import AuditRepo, Database, EventRepo, JobRepo, JobRow, Role, SegmentRepo
from vigil.store.sink import StoreEventSink
from vigil.types import Event, EventState

DEADLINE_S = 300.0


@pytest.fixture
def recorded(tmp_path: Path, faces_mp4: Path) -> Iterator[tuple[Database, Path]]:  # noqa: F811
    """A migrated database with the faces clip recorded on ``front`` from ``T0``."""
    db = Database(f"sqlite:///{tmp_path / 'vigil.db'}")
    db.migrate()
    record_faces(db, tmp_path / "data", faces_mp4)
    yield db, tmp_path / "data"
    db.close()


@pytest.fixture
def factory(face_detector: FaceDetector) -> object:
    def build(config: RedactConfig, size: tuple[int, int]) -> Redactor:
        return build_redactor(config, size, face_detector=face_detector)

    return build


@pytest.fixture
def apps() -> Iterator[list[Api]]:
    built: list[Api] = []
    yield built
    for api in built:
        api.close()


def make_api(apps: list[Api], recorded: tuple[Database, Path], factory: object,
             **settings: object) -> Api:  # fmt: skip
    api = build_api(recorded[0], recorded[1], factory, clip_rolls={"front": ROLL},  # type: ignore[arg-type]
                    **settings)  # fmt: skip
    apps.append(api)
    return api


def ended(event_id: str, start: float, end: float) -> Event:
    """A live event that just ended on a recording camera, as the Supervisor's sinks get it."""
    return Event(event_id, "front", "person", 0, 1, start, end, EventState.END, live=True,
                 has_clip=True)  # fmt: skip


def jobs_of(db: Database, kind: str | None = None) -> list[JobRow]:
    with db.session() as session:
        return JobRepo(session).list(kind=kind)


def wait_row(db: Database, job_id: str, states: tuple[str, ...]) -> JobRow:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        with db.session() as session:
            row = JobRepo(session).get(job_id)
        assert row is not None
        if row.state in states:
            return row
        assert time.monotonic() < deadline, f"job {row.kind} still {row.state}"
        time.sleep(0.1)


def publish_ended(api: Api, event: Event) -> None:
    """What the Supervisor's fan-out does when an event ends: the store, then the clip sink."""
    StoreEventSink(api.db).publish(event)
    ClipJobSink(api.db, on_queued=api.app.state.vigil.wake_jobs).publish(event)


def test_ended_event_clip_is_ready_without_a_request(
    apps: list[Api], recorded: tuple[Database, Path], factory: object
) -> None:
    api = make_api(apps, recorded, factory)
    publish_ended(api, ended("e9", T0 + 1.0, T0 + 1.8))
    (job,) = jobs_of(api.db, "clip")
    assert job.owner is None
    assert job.params["event"] == "e9"
    done = wait_row(api.db, job.id, ("done", "failed"))
    assert done.state == "done", done.error
    viewer = api.login("val", Role.VIEWER)
    reply = viewer.get("/api/events/e9/clip")
    assert reply.status_code == 200
    assert reply.headers["x-vigil-clip-cache"] == "hit", "served from the cache, not cut"
    with api.db.session() as session:
        (audit,) = AuditRepo(session).records(action="event.clip")
    assert audit.details["cached"] is True
    assert len(jobs_of(api.db, "clip")) == 1, "the request queued nothing more"
    # An open event, an unrecorded camera or a file event queue nothing.
    sink = ClipJobSink(api.db)
    sink.publish(Event("o1", "front", "person", 0, 2, T0, None, EventState.START, live=True,
                       has_clip=True))  # fmt: skip
    sink.publish(Event("n1", "front", "person", 0, 3, T0, T0 + 1, EventState.END, live=True))
    sink.publish(Event("f1", "front", "person", 0, 4, 1.0, 2.0, EventState.END, has_clip=True))
    assert len(jobs_of(api.db, "clip")) == 1


def test_background_clip_waits_for_its_post_roll(api: Api) -> None:
    """A clip queued as its event ends is cut once the post-roll is recorded, not before."""
    now = time.time()
    api.add_segment("front", now - 12)
    event = ended("late", now - 11, now - 10.5)  # + 5 s post-roll: recorded until now - 10
    StoreEventSink(api.db).publish(event)
    ClipJobSink(api.db).publish(event)
    (job,) = jobs_of(api.db, "clip")
    deadline = time.monotonic() + DEADLINE_S
    while True:  # claimed, found incomplete, deferred
        with api.db.session() as session:
            row = JobRepo(session).get(job.id)
        assert row is not None
        assert row.state != "done", "cut before the post-roll existed"
        if row.state == "queued" and row.not_before > 0:
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)
    for start in (now - 10, now - 8, now - 6):  # the recorder closes the post-roll segments
        api.add_segment("front", start)
    done = wait_row(api.db, job.id, ("done", "failed"))
    assert done.state == "done", done.error
    assert done.result is not None
    assert done.result["end"] == pytest.approx(now - 5.5)


def test_a_clip_asked_for_in_its_post_roll_is_served_while_the_complete_one_renders(
    api: Api,
) -> None:
    """Asked for just after its event ended, a clip is cut from what is recorded then; when
    the post-roll's next segment lands, that cut is served at once (``stale``, not 202 while
    it is cut again in the request), the complete clip renders in the background and is
    served once ready; a cut whose segment retention deleted is never served."""
    now = time.time()
    api.add_segment("front", now - 12)  # recorded until now - 10
    StoreEventSink(api.db).publish(ended("roll", now - 11, now - 10.5))  # post-roll to now - 5.5
    viewer = api.login("val", Role.VIEWER)
    early = fetch_clip(viewer, "/api/events/roll/clip")
    assert early.status_code == 200, early.text
    second, _ = api.add_segment("front", now - 10)  # the post-roll's next segment lands
    reply = viewer.get("/api/events/roll/clip")
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-vigil-clip-cache"] == "stale"
    assert reply.content == early.content
    queued = [j for j in jobs_of(api.db, "clip") if j.state != "done"]
    assert [j.priority for j in queued] == [PRIORITY_BACKGROUND], "the complete clip is queued"
    # A player's next range request, the complete clip still queued: the same earlier cut.
    player = viewer.get("/api/events/roll/clip", headers={"Range": "bytes=100-"})
    assert player.status_code == 206, player.text
    assert player.headers["x-vigil-clip-cache"] == "stale"
    assert player.content == early.content[100:]
    for start in (now - 8, now - 6):
        api.add_segment("front", start)
    done = wait_row(api.db, queued[0].id, ("done", "failed"))
    assert done.state == "done", done.error
    assert done.result is not None
    assert len(done.result["segments"]) == 4
    complete = viewer.get("/api/events/roll/clip")
    assert complete.headers["x-vigil-clip-cache"] == "hit"
    assert len(complete.content) > len(early.content)
    with api.db.session() as session:  # retention takes a segment the clip was cut from
        SegmentRepo(session).delete([second])
    again = fetch_clip(viewer, "/api/events/roll/clip")
    assert again.status_code == 200, again.text
    assert again.headers["x-vigil-clip-cache"] == "miss", "a clip of deleted footage was served"
    assert again.content != complete.content
    with api.db.session() as session:
        stale = [r.details["stale"] for r in AuditRepo(session).records(action="event.clip")]
    assert stale.count(True) == 2


def cut_in_post_roll(api: Api, event_id: str) -> tuple[Any, Any, float]:
    """An event that ended just now, its clip cut (by a viewer's request) while the
    post-roll was recorded, then the post-roll's next segment landed: ``(viewer, the
    earlier cut's answer, now)``."""
    now = time.time()
    api.add_segment("front", now - 12)
    StoreEventSink(api.db).publish(ended(event_id, now - 11, now - 10.5))
    viewer = api.login("val", Role.VIEWER)
    early = fetch_clip(viewer, f"/api/events/{event_id}/clip")
    assert early.status_code == 200, early.text
    api.add_segment("front", now - 10)
    return viewer, early, now


def test_the_earlier_cut_is_served_while_its_successor_renders(api: Api) -> None:
    """The earlier cut of a clip stays on disk (and is served, ``stale``) while the clip
    that replaces it is cut: deleted first, a request in that time waited and got 202, and a
    player reading the earlier cut lost it under its feet."""
    viewer, early, _now = cut_in_post_roll(api, "roll")
    state = api.app.state.vigil
    with api.db.session() as session:
        row = EventRepo(session).get("roll")
    assert row is not None
    during: list[Any] = []

    def ask(fraction: float) -> None:
        if not during:  # the successor is being cut: ask for the clip meanwhile
            during.append(viewer.get("/api/events/roll/clip"))

    complete = event_clip(state, row, None, on_fraction=ask)
    assert complete.cached is False
    assert len(complete.segments) == 2
    (reply,) = during
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-vigil-clip-cache"] == "stale"
    assert reply.content == early.content
    assert viewer.get("/api/events/roll/clip").headers["x-vigil-clip-cache"] == "hit"


def test_a_player_pinned_to_a_cut_reads_it_while_a_newer_cut_replaces_it(api: Api) -> None:
    """A player's range requests name the cut its first answer named (``cut``), and read that
    file to the end while the complete clip replaces it: without, the bytes after 100 came
    from the new file. A cut is refused (410) once gone, or when the camera's redaction
    settings changed since it was cut (an old URL never bypasses a new mask)."""
    viewer, early, now = cut_in_post_roll(api, "pin")
    cut = early.headers["x-vigil-clip-cut"]
    assert viewer.get("/api/events/pin/clip").headers["x-vigil-clip-cache"] == "stale"
    (queued,) = [j for j in jobs_of(api.db, "clip") if j.state != "done"]
    for start in (now - 8, now - 6):
        api.add_segment("front", start)
    assert wait_row(api.db, queued.id, ("done", "failed")).state == "done"
    complete = viewer.get("/api/events/pin/clip")
    assert complete.headers["x-vigil-clip-cache"] == "hit"
    assert complete.headers["x-vigil-clip-cut"] != cut
    pinned = viewer.get(f"/api/events/pin/clip?cut={cut}", headers={"Range": "bytes=100-"})
    assert pinned.status_code == 206, pinned.text
    assert pinned.headers["x-vigil-clip-cut"] == cut
    assert pinned.content == early.content[100:], "the player got bytes of another cut"
    latest = complete.headers["x-vigil-clip-cut"]
    assert viewer.get(f"/api/events/pin/clip?cut={latest}").content == complete.content
    state = api.app.state.vigil
    masked = RedactConfig(masks=[[(0, 0), (1, 0), (1, 1), (0, 1)]])
    unmasked = state.settings
    state.settings = replace(unmasked, camera_redact={"front": masked})
    for old in (cut, latest):
        refused = viewer.get(f"/api/events/pin/clip?cut={old}")
        assert refused.status_code == 410, "a cut without the new mask was served"
        assert refused.json()["error"]["code"] == "clip_replaced"
    state.settings = unmasked
    (early_file,) = [p for p in state.clips_dir.glob("front/*.mp4") if p.stem.endswith(cut)]
    early_file.unlink()
    assert viewer.get(f"/api/events/pin/clip?cut={cut}").status_code == 410
    assert viewer.get("/api/events/pin/clip?cut=zz").status_code == 422
    operator = api.login("op", Role.OPERATOR)
    both = operator.get(f"/api/events/pin/clip?unredacted=true&reason=x&cut={latest}")
    assert both.status_code == 422


def test_a_clip_deleted_after_it_was_picked_is_picked_again(
    apps: list[Api], recorded: tuple[Database, Path], factory: object,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A clip deleted between being picked and being sent (superseded, or retention took its
    footage) is picked again: it was a 500."""
    api = make_api(apps, recorded, factory, clip_wait_s=DEADLINE_S)
    add_event(api, "gone", start=T0 + 0.5)
    viewer = api.login("val", Role.VIEWER)
    first = fetch_clip(viewer, "/api/events/gone/clip")
    assert first.status_code == 200, first.text
    picked = events_routes.ready_clip
    lost: list[Path] = []

    def pick_then_lose(state: Any, row: Any) -> Any:
        clip = picked(state, row)
        if clip is not None and not lost:
            lost.append(clip.path)
            clip.path.unlink()
        return clip

    monkeypatch.setattr(events_routes, "ready_clip", pick_then_lose)
    reply = viewer.get("/api/events/gone/clip")
    assert lost, "the clip was not picked from the cache"
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-vigil-clip-cache"] == "miss", "cut again"
    assert lost[0].is_file()
    assert reply.content


def test_jobs_survive_a_restart(
    apps: list[Api], recorded: tuple[Database, Path], factory: object
) -> None:
    first = make_api(apps, recorded, factory, job_workers=0)  # a server that renders nothing
    publish_ended(first, ended("e1", T0 + 1.0, T0 + 1.8))
    operator = first.login("op", Role.OPERATOR)
    made = operator.post("/api/exports", json={"camera": "front", "start": T0, "end": T0 + 2})
    assert made.status_code == 202, made.text
    (clip,) = jobs_of(first.db, "clip")
    with first.db.session() as session:  # the server stopped in the middle of the clip
        row = JobRepo(session).get(clip.id)
        assert row is not None
        row.state, row.started = "running", T0
    time.sleep(1.0)
    assert {j.state for j in jobs_of(first.db)} == {"queued", "running"}, "nothing ran"
    second = make_api(apps, recorded, factory)  # the restart
    client = second.login("op")
    export = wait_job(client, made.json())
    assert export["state"] == "done", export
    assert client.get(export["result"]["url"]).status_code == 200
    assert wait_row(second.db, clip.id, ("done", "failed")).state == "done"
    assert client.get("/api/events/e1/clip").headers["x-vigil-clip-cache"] == "hit"


def test_a_waited_for_clip_jumps_the_queue(
    apps: list[Api], recorded: tuple[Database, Path], factory: object
) -> None:
    api = make_api(apps, recorded, factory, job_workers=0, clip_wait_s=0.0)
    publish_ended(api, ended("e1", T0 + 1.0, T0 + 1.8))  # background: queued first
    add_event(api, "e2", start=T0 + 0.5)
    operator = api.login("op", Role.OPERATOR)
    export = operator.post("/api/exports", json={"camera": "front", "start": T0, "end": T0 + 2})
    assert export.status_code == 202
    waiting = operator.get("/api/events/e2/clip")
    assert waiting.status_code == 202
    body = waiting.json()
    assert (body["kind"], body["state"], body["progress"]) == ("clip", "queued", 0.0)
    assert operator.get(body["url"]).json()["id"] == body["id"]
    runner = JobRunner(api.app.state.vigil, JOB_HANDLERS, workers=0)
    order = []
    while runner.run_next():
        (last,) = sorted((j for j in jobs_of(api.db) if j.finished is not None),
                         key=lambda j: j.finished or 0)[-1:]  # fmt: skip
        order.append((last.kind, last.params.get("event"), last.state))
    assert order == [("clip", "e2", "done"), ("export", None, "done"), ("clip", "e1", "done")]
    assert operator.get("/api/events/e2/clip").status_code == 200


def test_exports_per_user_are_limited(
    apps: list[Api], recorded: tuple[Database, Path], factory: object
) -> None:
    api = make_api(apps, recorded, factory, job_workers=0, max_user_jobs=2)
    request = {"camera": "front", "start": T0, "end": T0 + 2}
    viewer = api.login("val", Role.VIEWER)
    assert [viewer.post("/api/exports", json=request).status_code for _ in range(2)] == [202, 202]
    refused = viewer.post("/api/exports", json=request)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "too_many_jobs"
    assert int(refused.headers["retry-after"]) > 0
    other = api.login("ann", Role.VIEWER)
    assert other.post("/api/exports", json=request).status_code == 202, "per user"
    assert [j["kind"] for j in viewer.get("/api/jobs").json()] == ["export", "export"]
    assert JobRunner(api.app.state.vigil, JOB_HANDLERS, workers=0).run_next()
    assert viewer.post("/api/exports", json=request).status_code in (202, 429)
    states = [j["state"] for j in viewer.get("/api/jobs").json()]
    assert states.count("queued") + states.count("running") <= 2


def _top_level_boxes(data: bytes) -> list[str]:
    names, i = [], 0
    while i + 8 <= len(data):
        size, name = int.from_bytes(data[i : i + 4], "big"), data[i + 4 : i + 8].decode("latin1")
        if size == 1:
            size = int.from_bytes(data[i + 8 : i + 16], "big")
        elif size == 0:
            size = len(data) - i
        names.append(name)
        i += max(size, 8)
    return names


def _keyframe_gaps(path: Path) -> list[float]:
    """Seconds from each keyframe to the next, and from the last one to the end."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times, keys = [], []
        for packet in container.demux(stream):
            if packet.pts is None:
                continue
            t = float(packet.pts * packet.time_base)
            times.append(t)
            if packet.is_keyframe:
                keys.append(t)
    end = max(times) + 0.1  # 10 fps: the last frame lasts 0.1 s
    return [b - a for a, b in zip(sorted(keys), [*sorted(keys)[1:], end], strict=True)]


def test_export_job_lifecycle(api: Api, tmp_path: Path) -> None:
    for start in (T0, T0 + 2, T0 + 4):
        api.add_segment("front", start)
    viewer = api.login("val", Role.VIEWER)
    made = viewer.post("/api/exports", json={"camera": "front", "start": T0 + 0.5,
                                              "end": T0 + 5.5})  # fmt: skip
    assert made.status_code == 202, made.text
    job = made.json()
    assert job["kind"] == "export"
    assert job["state"] in ("queued", "running")
    assert job["result"] is None
    assert job["url"] == f"/api/jobs/{job['id']}"
    seen = []
    deadline = time.monotonic() + DEADLINE_S
    while job["state"] in ("queued", "running"):
        assert time.monotonic() < deadline
        seen.append(job["progress"])
        time.sleep(0.05)
        job = viewer.get(job["url"]).json()
    assert job["state"] == "done", job
    assert job["progress"] == 1.0
    assert all(0 <= p <= 1 for p in seen)
    assert seen == sorted(seen), "progress only goes forward"
    result = job["result"]
    download = viewer.get(result["url"])
    assert download.status_code == 200
    path = tmp_path / "export.mp4"
    path.write_bytes(download.content)
    boxes = _top_level_boxes(download.content)
    assert boxes.index("moov") < boxes.index("mdat"), f"faststart: {boxes}"
    gaps = _keyframe_gaps(path)
    assert len(gaps) >= 3, gaps
    assert max(gaps) <= 2.0, gaps
    key = load_or_create_key(api.data_dir / "keys" / "export_ed25519.pem").public_key()
    assert verify_export(api.data_dir / "exports" / result["name"], trusted_key=key).ok
    other = api.login("ann", Role.VIEWER)
    assert other.get(job["url"]).status_code == 404, "another user's export job"
    assert other.get("/api/jobs").json() == []


def test_finished_jobs_are_forgotten_after_a_week(
    apps: list[Api], recorded: tuple[Database, Path], factory: object
) -> None:
    api = make_api(apps, recorded, factory, job_workers=0)
    with api.db.session() as session:
        repo = JobRepo(session)
        old, new, active = (repo.add("clip", {"camera": "front"}) for _ in range(3))
        repo.finish(old.id, {}, now=time.time() - 8 * 86400)
        repo.finish(new.id, {}, now=time.time() - 86400)
    runner = JobRunner(api.app.state.vigil, JOB_HANDLERS, workers=0)
    assert runner._prune(now=time.time() + 601) == 1
    assert {j.id for j in jobs_of(api.db)} == {new.id, active.id}


def test_stopping_cancels_the_running_job_and_queues_it_again(
    apps: list[Api], recorded: tuple[Database, Path], factory: object
) -> None:
    api = make_api(apps, recorded, factory, job_workers=0)
    state = api.app.state.vigil
    reports: list[float] = []

    def handler(_state: object, _job: JobRow, progress: Callable[[float], None]
                ) -> dict[str, object]:  # fmt: skip
        progress(0.25)
        reports.append(0.25)
        runner.stop(timeout=0)  # the server shuts down in the middle of the render
        progress(0.5)
        reports.append(0.5)
        return {}

    runner = JobRunner(state, {"slow": handler}, workers=0)
    with api.db.session() as session:
        job = JobRepo(session).add("slow", {"camera": "front"})
    assert runner.run_next()
    assert reports == [0.25], "the render stopped at its next progress report"
    with api.db.session() as session:
        row = JobRepo(session).get(job.id)
    assert row is not None
    assert (row.state, row.started, row.finished) == ("queued", None, None)


def test_an_open_events_clip_is_served_once_rendered(
    apps: list[Api], recorded: tuple[Database, Path], factory: object
) -> None:
    """An open event's span grows with every request: the clip its job just rendered is
    served, rather than a new job queued at each poll."""
    api = make_api(apps, recorded, factory)
    StoreEventSink(api.db).publish(
        Event(
            "open",
            "front",
            "person",
            0,
            7,
            T0 + 1.0,
            None,
            EventState.START,
            live=True,
            has_clip=True,
        )
    )
    viewer = api.login("val", Role.VIEWER)
    reply = fetch_clip(viewer, "/api/events/open/clip")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "video/mp4"
    assert len(jobs_of(api.db, "clip")) == 1


def test_clips_one_user_waits_for_are_limited(
    apps: list[Api], recorded: tuple[Database, Path], factory: object
) -> None:
    api = make_api(apps, recorded, factory, job_workers=0, clip_wait_s=0.0,
                   max_user_clip_jobs=1)  # fmt: skip
    for event_id in ("e1", "e2"):
        add_event(api, event_id, start=T0 + 1.0)
    viewer = api.login("val", Role.VIEWER)
    assert viewer.get("/api/events/e1/clip").status_code == 202
    assert viewer.get("/api/events/e1/clip").status_code == 202, "the same clip: no new job"
    refused = viewer.get("/api/events/e2/clip")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "too_many_jobs"
    assert api.login("ann", Role.VIEWER).get("/api/events/e2/clip").status_code == 202


# -- the YAML `jobs` section ---------------------------------------------------------------------

JOBS_YAML = """
jobs:
  workers: 3
  max_queued: 50
  max_user_exports: 4
  max_user_clips: 9
  max_export_seconds: 600
  clip_cache_bytes: 5000000
  clip_wait: 0.5
  clip_settle: 30
  face_full_every: 0.25
"""


def test_the_jobs_section_reaches_the_api_and_the_clip_sink(tmp_path: Path) -> None:
    from vigil.commands.serve import api_settings, clip_jobs
    from vigil.config.loader import parse_config

    settings = api_settings(parse_config(JOBS_YAML))
    assert (settings.job_workers, settings.max_queued_jobs, settings.max_user_jobs,
            settings.max_user_clip_jobs, settings.max_export_s, settings.clip_cache_bytes,
            settings.clip_wait_s, settings.clip_settle_s, settings.face_full_every_s) == (
        3, 50, 4, 9, 600, 5_000_000, 0.5, 30, 0.25)  # fmt: skip
    db = Database(f"sqlite:///{tmp_path / 'vigil.db'}")
    try:
        assert clip_jobs(parse_config(JOBS_YAML), db).limits.max_queued == 50
    finally:
        db.close()
    # Without a `jobs` section the API keeps the defaults it always had.
    from vigil.api import ApiSettings
    from vigil.config.models import VigilConfig

    defaults, before = api_settings(VigilConfig()), ApiSettings()
    for name in ("job_workers", "max_queued_jobs", "max_user_jobs", "max_user_clip_jobs",
                 "max_export_s", "clip_cache_bytes", "clip_wait_s", "clip_settle_s",
                 "face_full_every_s"):  # fmt: skip
        assert getattr(defaults, name) == getattr(before, name), name


@pytest.mark.parametrize(("text", "message"), [
    ("jobs:\n  workers: -1\n", r"cameras.yaml:2: jobs.workers: .*greater than or equal to 0"),
    ("jobs:\n  max_queued: 0\n", r"cameras.yaml:2: jobs.max_queued"),
    ("jobs:\n  clip_cache_bytes: 10\n", r"jobs.clip_cache_bytes"),
    ("jobs:\n  threads: 2\n", r"unknown key 'threads'; allowed here: clip_cache_bytes, .*workers"),
    ("jobs:\n  max_queued: 5\n  max_user_clips: 6\n",
     r"jobs.max_user_clips \(6\) is above jobs.max_queued \(5\).*lower it or raise max_queued"),
])  # fmt: skip
def test_bad_jobs_settings_are_configuration_errors(text: str, message: str) -> None:
    from vigil.config.loader import parse_config
    from vigil.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        parse_config(text, source="cameras.yaml")


def test_the_yaml_job_limits_govern_the_api(
    apps: list[Api], recorded: tuple[Database, Path], factory: object
) -> None:
    from vigil.commands.serve import api_settings
    from vigil.config.loader import parse_config

    config = parse_config("jobs: {workers: 0, max_queued: 2, max_user_exports: 1}\n")
    s = api_settings(config)
    api = make_api(apps, recorded, factory, job_workers=s.job_workers,
                   max_queued_jobs=s.max_queued_jobs, max_user_jobs=s.max_user_jobs)  # fmt: skip
    assert api.app.state.vigil.jobs is None, "workers: 0 starts no job thread"
    request = {"camera": "front", "start": T0, "end": T0 + 2}
    val, ann, bob = (api.login(n, Role.VIEWER) for n in ("val", "ann", "bob"))
    assert val.post("/api/exports", json=request).status_code == 202
    assert val.post("/api/exports", json=request).status_code == 429, "max_user_exports: 1"
    assert ann.post("/api/exports", json=request).status_code == 202
    full = bob.post("/api/exports", json=request)
    assert full.status_code == 503, "max_queued: 2"
    assert full.json()["error"]["code"] == "queue_full"
