"""Event clips: cut from real segments (the corridor GIF with faces, H.264 by FFmpeg, segmented
by the real Segmenter), redacted by default (checked with YuNet), cached, Range, audited; and
count series by ISO week."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from httpx import Response

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

from tests.api.conftest import T0, Api, build_api
from tests.api.test_events import _faces, add_event
from tests.record.conftest import require_tool
from tests.store.conftest import PgServer, new_pg_database
from vigil.api.clips import SERVED_GRACE_S, prune_clip_cache
from vigil.config.models import RedactConfig
from vigil.privacy import FaceDetector, Redactor, build_redactor
from vigil.record.export import manifest_path
from vigil.record.segmenter import Segmenter
from vigil.store import AuditRepo, CountKey, CountRepo, Database, Role, SegmentRepo

ROLL = (0.5, 0.5)


@pytest.fixture(scope="session")
def faces_mp4(tmp_path_factory: pytest.TempPathFactory, clips_dir: Path) -> Path:
    """The corridor GIF (2.8 s, 12.5 fps, faces) as H.264 with a keyframe every 5 frames."""
    require_tool("ffmpeg")
    out = tmp_path_factory.mktemp("faces") / "faces.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-i",
         str(clips_dir / "face-demographics-walking.gif"), "-c:v", "libx264", "-g", "5",
         "-pix_fmt", "yuv420p", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", str(out)],
        check=True,
    )  # fmt: skip
    return out


@pytest.fixture(scope="session")
def clips_dir() -> Path:  # session scope for faces_mp4 (the shared fixture is per test)
    from tests.conftest import require_file
    from vigil.paths import shared_data_dir

    return require_file(shared_data_dir() / "clips")


def record_faces(db: Database, data_dir: Path, faces_mp4: Path) -> None:
    """The faces clip recorded as 1 s segments of ``front`` from ``T0``, registered in the
    store as the recorder does."""
    segmenter = Segmenter("front", data_dir, segment_seconds=1.0, clock=lambda: T0)
    with av.open(str(faces_mp4)) as inp:
        segmenter.set_streams(inp.streams.video[0])
        for packet in inp.demux(video=0):
            segmenter.write(packet)
    segmenter.close()
    assert len(segmenter.segments) >= 2
    with db.session() as session:
        for s in segmenter.segments:
            SegmentRepo(session).add(
                camera="front", path=s.path.relative_to(data_dir).as_posix(),
                start=s.start, end=s.end, size=s.size, sha256=s.sha256)  # fmt: skip


def fetch_clip(client: TestClient, url: str, **kwargs: Any) -> Response:
    """GET a clip, asking again while it is being prepared (202 with the job)."""
    deadline = time.monotonic() + 300
    while True:
        reply = client.get(url, **kwargs)
        if reply.status_code != 202:
            return reply
        job = reply.json()
        assert job["kind"] == "clip", job
        assert 0 <= job["progress"] <= 1, job
        assert time.monotonic() < deadline, f"clip still {job['state']} after 300 s"
        time.sleep(0.2)


@pytest.fixture
def rec(tmp_path: Path, face_detector: FaceDetector, faces_mp4: Path) -> Iterator[Api]:
    """The API with ``clip_rolls`` of 0.5 s and the clip recorded as 1 s segments of
    ``front`` starting at ``T0`` (``record_faces``)."""
    db = Database(f"sqlite:///{tmp_path / 'vigil.db'}")
    db.migrate()

    def factory(config: RedactConfig, size: tuple[int, int]) -> Redactor:
        return build_redactor(config, size, face_detector=face_detector)

    api = build_api(db, tmp_path / "data", factory, clip_rolls={"front": ROLL})
    record_faces(db, api.data_dir, faces_mp4)
    add_event(api, "e1", start=T0 + 1.0)  # ends at start + 5 (add_event's span)
    yield api
    api.close()
    db.close()


def frames_of(data: bytes, tmp_path: Path) -> list[np.ndarray]:
    path = tmp_path / "got.mp4"
    path.write_bytes(data)
    with av.open(str(path)) as container:
        return [np.ascontiguousarray(f.to_ndarray(format="bgr24"))
                for f in container.decode(video=0)]  # fmt: skip


def with_faces(model: Path, frames: list[np.ndarray]) -> int:
    return sum(_faces(model, f) >= 1 for f in frames)


def clip_audit(api: Api) -> list[tuple[str, str | None, bool, bool]]:
    with api.db.session() as session:
        rows = AuditRepo(session).records(action="event.clip")
    return [(r.actor, r.reason, r.details["redacted"], r.details["cached"]) for r in rows]


def test_clip_is_redacted_cached_and_ranged(rec: Api, yunet_path: Path, tmp_path: Path) -> None:
    viewer = rec.login("val", Role.VIEWER)
    first = fetch_clip(viewer, "/api/events/e1/clip")
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "video/mp4"
    frames = frames_of(first.content, tmp_path)
    # The event runs from T0 + 1 to past the recording (2.8 s): with 0.5 s pre-roll the clip
    # starts at T0 + 0.5, exact to the frame when redacted: 2.3 s at 12.5 fps.
    assert 27 <= len(frames) <= 30
    assert with_faces(yunet_path, frames) <= len(frames) // 10, "faces are blurred"
    again = viewer.get("/api/events/e1/clip")
    assert again.headers["x-vigil-clip-cache"] == "hit"
    assert again.content == first.content
    part = viewer.get("/api/events/e1/clip", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.content == first.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(first.content)}"
    size = len(first.content)
    bad = viewer.get("/api/events/e1/clip", headers={"Range": f"bytes={size}-"})
    assert bad.status_code == 416
    assert bad.json()["error"]["code"] == "range_not_satisfiable"
    assert clip_audit(rec)[-2:] == [("val", None, True, True), ("val", None, True, True)]
    cached = list((rec.data_dir / "clips" / "front").glob("*.mp4"))
    assert len(cached) == 1


def test_unredacted_clip_needs_operator_and_reason(
    rec: Api, yunet_path: Path, tmp_path: Path
) -> None:
    url = "/api/events/e1/clip"
    viewer = rec.login("val", Role.VIEWER)
    assert viewer.get(url, params={"unredacted": True, "reason": "curious"}).status_code == 403
    operator = rec.login("op", Role.OPERATOR)
    assert operator.get(url, params={"unredacted": True}).status_code == 403  # no reason
    reply = operator.get(url, params={"unredacted": True, "reason": "incident 42"})
    assert reply.status_code == 200
    frames = frames_of(reply.content, tmp_path)
    assert with_faces(yunet_path, frames) >= len(frames) // 2, "stream copy: faces visible"
    assert clip_audit(rec) == [("op", "incident 42", False, False)]
    redacted = operator.get(url)
    assert redacted.status_code == 202 or redacted.headers["x-vigil-clip-cache"] == "miss", (
        "kept apart from the unredacted"
    )


def test_clip_without_recording_and_after_retention(rec: Api) -> None:
    add_event(rec, "late", start=T0 + 3600)
    viewer = rec.login("val", Role.VIEWER)
    reply = viewer.get("/api/events/late/clip")
    assert reply.status_code == 404
    assert reply.json()["error"]["code"] == "no_recording"
    assert "retention" in reply.json()["error"]["message"]
    assert fetch_clip(viewer, "/api/events/e1/clip").status_code == 200
    with rec.db.session() as session:  # retention deletes every segment
        repo = SegmentRepo(session)
        repo.delete([r.id for r in repo.list("front")])
    assert viewer.get("/api/events/e1/clip").json()["error"]["code"] == "no_recording"
    assert list((rec.data_dir / "clips" / "front").glob("*")) == [], "the cache went too"


def test_clip_follows_new_segments_and_scope(rec: Api) -> None:
    viewer = rec.login("val", Role.VIEWER)
    first = fetch_clip(viewer, "/api/events/e1/clip")
    assert first.status_code == 200
    (cut,) = (rec.data_dir / "clips" / "front").glob("*.mp4")
    with rec.db.session() as session:  # the post-roll's segment closes later: cut again
        (last,) = SegmentRepo(session).list("front")[-1:]
        SegmentRepo(session).delete([last.id])
    again = viewer.get("/api/events/e1/clip")
    assert again.status_code == 202 or again.headers["x-vigil-clip-cache"] == "miss"
    assert fetch_clip(viewer, "/api/events/e1/clip").content != first.content
    clips = set((rec.data_dir / "clips" / "front").glob("*.mp4"))
    assert clips > {cut}, "the old one, served moments ago, is spared (a player may read it)"
    (recut,) = clips - {cut}
    served = time.time() - SERVED_GRACE_S - 1
    os.utime(cut, (served, served))
    with rec.db.session() as session:  # and another segment goes: cut again
        SegmentRepo(session).delete([SegmentRepo(session).list("front")[-1].id])
    assert fetch_clip(viewer, "/api/events/e1/clip").status_code == 200
    clips = set((rec.data_dir / "clips" / "front").glob("*.mp4"))
    assert cut not in clips, "a superseded clip not served for a while is deleted"
    assert recut in clips, "the one served moments ago is spared"
    scoped = rec.login("bob", Role.VIEWER, cameras=["back"])
    assert scoped.get("/api/events/e1/clip").status_code == 404
    assert viewer.get("/api/events/nope/clip").status_code == 404


# -- counts by ISO week -------------------------------------------------------------------------

MONDAY = 1_714_348_800  # 2024-04-29T00:00:00Z, the Monday of T0's week (T0 is a Wednesday)
WEEK = 7 * 86400


WEEKS = [
    (T0, MONDAY),
    (MONDAY, MONDAY),  # a week starts on Monday 00:00 UTC
    (MONDAY - 60, MONDAY - WEEK),  # Sunday 23:59 belongs to the week before
    (MONDAY + WEEK - 60, MONDAY),
    (MONDAY + WEEK, MONDAY + WEEK),
    (1_704_067_200, 1_704_067_200),  # Monday 2024-01-01 (ISO week 1)
    (1_704_024_000, 1_703_462_400),  # Sunday 2023-12-31 noon: week of Monday 12-25
]  # fmt: skip


@pytest.mark.parametrize(("when", "week_start"), WEEKS)
def test_counts_by_iso_week(api: Api, when: float, week_start: int) -> None:
    with api.db.session() as session:
        CountRepo(session).increment(CountKey("front", "gate", "line", "person", "a_to_b"), when)
    client = api.login("val", Role.VIEWER)
    (point,) = client.get("/api/counts", params={"camera": "front", "period": "week"}).json()
    assert point["time"] == week_start
    assert point["count"] == 1


def test_week_buckets_on_postgresql(pg_server: PgServer) -> None:
    """The same SQL on PostgreSQL (integer division must floor there too)."""
    db = Database(new_pg_database(pg_server))
    try:
        with db.session() as session:
            repo = CountRepo(session)
            for i, (when, _) in enumerate(WEEKS):
                repo.increment(CountKey("front", "gate", "line", f"c{i}", "a_to_b"), when)
        with db.session() as session:
            points = CountRepo(session).series("front", period="week")
        got = {p.label: p.time for p in points}
        assert got == {f"c{i}": start for i, (_, start) in enumerate(WEEKS)}
    finally:
        db.close()


def test_clip_cache_keeps_under_its_cap(rec: Api) -> None:
    """With room for one clip, cutting a second evicts the least recently served."""
    state = rec.app.state.vigil
    add_event(rec, "e2", start=T0 + 2.0)
    operator = rec.login("op", Role.OPERATOR)
    params = {"unredacted": True, "reason": "incident 42"}  # stream copy: quick to cut
    assert operator.get("/api/events/e1/clip", params=params).status_code == 200
    (one,) = state.clips_dir.glob("*/*.mp4")
    state.settings = dataclasses.replace(state.settings, clip_cache_bytes=one.stat().st_size)
    assert operator.get("/api/events/e2/clip", params=params).status_code == 200
    (left,) = state.clips_dir.glob("*/*.mp4")
    assert left != one
    assert not manifest_path(one).exists()
    again = operator.get("/api/events/e1/clip", params=params)
    assert again.headers["x-vigil-clip-cache"] == "miss"


def test_prune_clip_cache_goes_least_recently_served_first(tmp_path: Path) -> None:
    clips = []
    for i in range(4):
        clip = tmp_path / "front" / f"c{i}.mp4"
        clip.parent.mkdir(exist_ok=True)
        clip.write_bytes(b"x" * 100)
        manifest_path(clip).write_text("{}")
        os.utime(clip, (1000 + i, 1000 + i))
        clips.append(clip)
    os.utime(clips[0], (2000, 2000))  # served last
    deleted = prune_clip_cache(tmp_path, 250, keep=clips[1])
    assert deleted == [clips[2], clips[3]]
    assert sorted(p.name for p in tmp_path.rglob("*.mp4")) == ["c0.mp4", "c1.mp4"]
    assert not manifest_path(clips[2]).exists()
    assert prune_clip_cache(tmp_path, 10**6, keep=clips[0]) == []
