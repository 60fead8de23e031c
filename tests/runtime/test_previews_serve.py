"""Redacted timeline previews made by ``vigil serve`` at record time, on both local backends.

The face clip (``face-demographics-walking.gif``, as H.264) is a looping file camera of a real
Supervisor with a real SQLite database. Its segments get previews written beside them and
listed on their rows; YuNet (not the CenterFace that redacts) finds no face in any of them,
though it finds the faces in the same frames unredacted at the previews' size; retention
deletes them with their segments.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest

from tests.record.conftest import require_tool
from vigil import clock
from vigil.config.models import VigilConfig
from vigil.record.previews import parse_offsets, preview_dir, preview_file
from vigil.record.recorder import Recorder
from vigil.runtime.previews import PREVIEW_WIDTH, PreviewTaker
from vigil.runtime.serve import Supervisor
from vigil.runtime.view import CameraStatus, TrackBox, TrackSnapshot
from vigil.store import Database, SegmentRepo
from vigil.types import ImageArray


def yunet_faces(model: Path, image: ImageArray) -> int:
    h, w = image.shape[:2]
    detector = cv2.FaceDetectorYN.create(str(model), "", (w, h), 0.5, 0.3, 5000)
    _, found = detector.detect(image)
    return 0 if found is None else len(found)


@pytest.fixture(scope="module")
def face_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The face clip as H.264 (a recorder stream-copies; a GIF cannot go into an MP4)."""
    require_tool("ffmpeg")
    from vigil.paths import shared_data_dir

    gif = shared_data_dir() / "clips" / "face-demographics-walking.gif"
    if not gif.exists():
        pytest.skip(f"shared file {gif} is missing (set VIGIL_SHARED_DIR)")
    out = tmp_path_factory.mktemp("face") / "face.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(gif), "-c:v",
                    "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-r", "10",
                    "-g", "5", "-keyint_min", "5", "-sc_threshold", "0", str(out)],
                   check=True)  # fmt: skip
    return out


def frames(path: Path) -> list[ImageArray]:
    with av.open(str(path)) as container:
        return [np.ascontiguousarray(f.to_ndarray(format="bgr24"))
                for f in container.decode(video=0)]  # fmt: skip


def small(image: ImageArray) -> ImageArray:
    height = round(image.shape[0] * PREVIEW_WIDTH / image.shape[1])
    return np.ascontiguousarray(cv2.resize(image, (PREVIEW_WIDTH, height),
                                           interpolation=cv2.INTER_AREA))  # fmt: skip


def config(tmp: Path, clip: Path, **record: Any) -> VigilConfig:
    return VigilConfig.model_validate(raw_config(tmp, clip, **record))


def raw_config(tmp: Path, clip: Path, **record: Any) -> dict[str, Any]:
    """``config`` before validation, to change: a validated one has the global sections merged
    into each camera's, so a changed global section would no longer reach the camera."""
    return {
        "detect": {"model": "motion", "fps": 5},
        "record": {"mode": "continuous", "segment_seconds": 1, "preview_interval": 0.25,
                   "max_age": 3600, **record},
        "data_dir": str(tmp / "data"),
        "cameras": {"face": {"sources": [{"url": str(clip), "loop": True}]}},
    }  # fmt: skip


def wait_for(what: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} within {timeout} s")
        time.sleep(0.2)


def previewed(db: Database) -> list[Any]:
    with db.session() as session:
        return [r for r in SegmentRepo(session).list("face") if r.previews]


def test_a_preview_of_a_face_frame_shows_no_face(face_clip: Path, yunet_path: Path,
                                                 tmp_path: Path) -> None:  # fmt: skip
    """The taker's render, frame by frame: YuNet finds the faces in the scaled frame, none
    in its preview (CenterFace on the full frame, then scaled)."""
    taker = PreviewTaker(config(tmp_path, face_clip), {}, {}, tmp_path)
    checked = 0
    for image in frames(face_clip)[::4]:
        if yunet_faces(yunet_path, small(image)) == 0:
            continue  # nothing to hide in this frame at this size
        jpeg = taker.render("face", image, TrackSnapshot())
        assert jpeg is not None
        preview = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert preview.shape[1] == PREVIEW_WIDTH
        assert yunet_faces(yunet_path, preview) == 0
        checked += 1
    assert checked >= 3, "the clip shows faces YuNet finds at the previews' size"


def test_a_preview_has_the_camera_s_own_masks(face_clip: Path, tmp_path: Path) -> None:
    """``redact_for(camera)``: the camera's mask over its left half is black in the preview,
    the right half keeps the picture."""
    settings = raw_config(tmp_path, face_clip)
    settings["cameras"]["face"]["redact"] = {"masks": [[[0, 0], [0.5, 0], [0.5, 1], [0, 1]]]}
    taker = PreviewTaker(VigilConfig.model_validate(settings), {}, {}, tmp_path)
    image = np.full((270, 480, 3), 200, np.uint8)
    jpeg = taker.render("face", image, TrackSnapshot())
    assert jpeg is not None
    preview = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert preview[:, : PREVIEW_WIDTH // 2 - 4].max() < 20, "the mask is black"
    assert preview[:, PREVIEW_WIDTH // 2 + 4 :].min() > 180, "outside it, the picture"


@pytest.mark.parametrize(("model", "tracked"), [("motion", False), ("yolox-nano", True)])
def test_people_modes_hide_the_tracked_people_or_detect_them(
    face_clip: Path, tmp_path: Path, model: str, tracked: bool,
) -> None:  # fmt: skip
    """People come from the camera's person tracks when its detector tracks people; a motion
    camera has none, so the Redactor's own person detector must run (``people=None``)."""
    settings = raw_config(tmp_path, face_clip)
    settings["redact"] = {"mode": "people"}
    settings["detect"] = {"model": model}
    seen: list[Any] = []

    def factory(_config: Any, _size: Any) -> Callable[..., ImageArray]:
        def redact(image: ImageArray, people: Any = None) -> ImageArray:
            seen.append(people)
            return image

        return redact

    taker = PreviewTaker(VigilConfig.model_validate(settings), {}, {}, tmp_path,
                         redactor=factory)  # fmt: skip
    walker = TrackBox(7, "person", 0.9, (0.25, 0.5, 0.5, 1.0))
    tracks = TrackSnapshot(time=1.0, width=64, height=36, tracks=(walker,))
    assert taker.render("face", np.zeros((36, 64, 3), np.uint8), tracks) is not None
    (people,) = seen
    if not tracked:
        assert people is None
    else:
        assert people.xyxy.tolist() == [[16.0, 18.0, 32.0, 36.0]]
        assert people.tracker_id.tolist() == [7]


def test_a_preview_of_a_newer_frame_hides_who_came_in_since_the_analysed_one(
    face_clip: Path, tmp_path: Path
) -> None:
    """A preview is the camera's newest frame with the person boxes of its last analysed
    frame: someone who came in since is in no box, and is hidden as a change since that
    frame (``TrackSnapshot.decided``; ``vigil.privacy.changes``). The one-by-one clip:
    nobody in frame 60, the person coming in in frame 63."""
    from tests.unit.privacy.test_privacy_changes import frame, people
    from vigil.privacy.changes import thumbnail
    from vigil.privacy.redactor import build_person_detector

    settings = raw_config(tmp_path, face_clip)
    settings["redact"] = {"mode": "people", "style": "fill"}
    settings["detect"] = {"model": "yolox-nano"}
    detector = build_person_detector(VigilConfig.model_validate(settings).redact)
    taker = PreviewTaker(VigilConfig.model_validate(settings), {}, {}, tmp_path)
    image = frame(63)
    assert len(people(detector, image)), "yolox-nano must see the person coming in"
    shown = []
    for decided in (None, thumbnail(frame(60))):
        tracks = TrackSnapshot(time=6.0, width=384, height=216, decided=decided)
        jpeg = taker.render("face", image, tracks)
        assert jpeg is not None
        shown.append(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR))
    # The person's box in the 320 px preview: filled black (JPEG: nearly) only with it.
    x1, y1, x2, y2 = (people(detector, image)[0] * PREVIEW_WIDTH / 384).astype(int)
    black = [float((im[y1:y2, x1:x2].max(axis=2) < 16).mean()) for im in shown]
    assert black[0] < 0.2, "without the analysed frame's thumbnail the person shows"
    assert black[1] > 0.9, black


def test_a_preview_while_detection_is_off_hides_people(face_clip: Path, tmp_path: Path) -> None:
    """Detection switched off: the camera's tracks come from no analysed frame
    (``TrackSnapshot()``) and hold nobody; the preview's own person detector looks instead."""
    from tests.unit.privacy.test_privacy_changes import frame, people
    from vigil.privacy.redactor import build_person_detector

    settings = raw_config(tmp_path, face_clip)
    settings["redact"] = {"mode": "people", "style": "fill"}
    settings["detect"] = {"model": "yolox-nano"}
    detector = build_person_detector(VigilConfig.model_validate(settings).redact)
    taker = PreviewTaker(VigilConfig.model_validate(settings), {}, {}, tmp_path)
    image = frame(63)
    (box,) = people(detector, image)[:1]
    jpeg = taker.render("face", image, TrackSnapshot())
    assert jpeg is not None
    shown = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    x1, y1, x2, y2 = (box * PREVIEW_WIDTH / 384).astype(int)
    assert float((shown[y1:y2, x1:x2].max(axis=2) < 16).mean()) > 0.9


def test_a_failed_redaction_makes_no_preview(face_clip: Path, tmp_path: Path) -> None:
    def broken(*_: Any) -> Callable[..., ImageArray]:
        raise RuntimeError("the face model cannot be loaded")

    taker = PreviewTaker(config(tmp_path, face_clip), {}, {}, tmp_path, redactor=broken)
    assert taker.render("face", frames(face_clip)[0], TrackSnapshot()) is None


def _as_is(_config: Any, _size: Any) -> Callable[..., ImageArray]:
    return lambda image, people=None: image


class _Camera:
    def __init__(self, online: bool, age: float) -> None:
        self.online, self.age = online, age

    def status(self) -> CameraStatus:
        return CameraStatus("face", self.online, "running", last_frame_time=clock.now() - self.age)

    def latest_frame(self) -> ImageArray:
        return np.full((36, 64, 3), 90, np.uint8)

    def latest_tracks(self) -> TrackSnapshot:
        return TrackSnapshot()


def test_previews_are_taken_only_while_recording_a_fresh_frame(face_clip: Path,
                                                               tmp_path: Path) -> None:  # fmt: skip
    settings = config(tmp_path, face_clip, mode="motion")
    recorder = Recorder(str(face_clip), "face", tmp_path, mode="motion", post_roll=0.0)
    camera = _Camera(online=True, age=0.1)
    taker = PreviewTaker(settings, {"face": camera}, {"face": recorder}, tmp_path,
                         redactor=lambda _c, _s: lambda image, people=None: image)  # fmt: skip
    recorder.state = "recording"
    assert not taker.take("face"), "motion mode, nothing moves: nothing is recorded"
    recorder.mark_activity(clock.now() + 60)
    assert taker.take("face")
    camera.age = 30.0
    assert not taker.take("face"), "a stale frame (the analysis stalled)"
    camera.age, camera.online = 0.1, False
    assert not taker.take("face"), "the camera is offline"
    camera.online, recorder.enabled = True, False
    assert not taker.take("face"), "recording switched off"
    recorder.enabled, recorder.state = True, "reconnecting"
    assert not taker.take("face"), "the recorder is not connected"
    assert taker.taken == {"face": 1}
    assert len(taker.buffers["face"]) == 1


def test_a_preview_is_placed_on_the_recording_s_timeline(face_clip: Path,
                                                         tmp_path: Path) -> None:  # fmt: skip
    """A camera that bursts buffered video on connect puts its segments' times ahead of the
    frames' wall clock (an RTSP relay: ~4-5 s); the preview goes where the recording shows
    the same moment, else no segment would ever hold it."""
    recorder = Recorder(str(face_clip), "face", tmp_path)
    camera = _Camera(online=True, age=0.0)
    taker = PreviewTaker(
        config(tmp_path, face_clip), {"face": camera}, {"face": recorder}, tmp_path, redactor=_as_is
    )
    recorder.state = "recording"
    recorder.segmenter.last_time = clock.now() + 5.0
    before = clock.now()
    assert taker.take("face")
    ((when, _),) = taker.buffers["face"].take(0, float("inf"))
    assert before + 4.5 <= when <= clock.now() + 5.5


@pytest.mark.parametrize("processes", [0, 1], ids=["threads", "processes"])
def test_serve_writes_redacted_previews_beside_segments_and_retention_deletes_them(
    face_clip: Path, yunet_path: Path, tmp_path: Path, processes: int,
) -> None:  # fmt: skip
    db = Database(f"sqlite:///{tmp_path / 'vigil.db'}")
    db.migrate()
    supervisor = Supervisor(config(tmp_path, face_clip), db=db, worker_processes=processes)
    assert (supervisor.pool is not None) == bool(processes)
    supervisor.start()
    try:
        wait_for(lambda: len(previewed(db)) >= 4, 120, "four segments with previews")
    finally:
        supervisor.stop()
    data = tmp_path / "data"
    rows = previewed(db)
    faces_seen = 0
    for row in rows:
        offsets = parse_offsets(row.previews)
        files = [data / preview_file(row.path, o) for o in offsets]
        assert all(f.is_file() for f in files), row.path
        assert sum(f.stat().st_size for f in files) == row.preview_bytes
        assert all(0 <= o <= (row.end - row.start) * 1000 for o in offsets)
        for file in files:
            preview = cv2.imread(str(file), cv2.IMREAD_COLOR)
            assert preview is not None
            assert preview.shape[1] == PREVIEW_WIDTH
            faces_seen += yunet_faces(yunet_path, preview)
    assert faces_seen == 0, "a preview shows a face"
    with db.session() as session:
        total = SegmentRepo(session).total_size("face")
        files = sum(r.size for r in SegmentRepo(session).list("face"))
    assert total == files + sum(r.preview_bytes for r in rows), "the storage gauge counts them"
    # Everything is past max_age two hours on: the segments go, and their previews with them.
    removed = supervisor.run_retention(time.time() + 7200)
    assert {r.path for r in rows} <= set(removed)
    assert not any((data / preview_dir(r.path)).exists() for r in rows)
    assert not (data / "previews" / "face").exists(), "emptied folders are pruned"
    db.close()


def test_closing_waits_for_a_preview_being_taken(face_clip: Path, tmp_path: Path) -> None:
    """``close`` returns once the taking thread has ended: a preview being redacted runs
    native code, and a process that exits under it can abort."""
    inside, done = threading.Event(), threading.Event()

    def slow(_config: Any, _size: Any) -> Callable[..., ImageArray]:
        def redact(image: ImageArray, people: Any = None) -> ImageArray:
            inside.set()
            time.sleep(1.0)
            done.set()
            return image

        return redact

    recorder = Recorder(str(face_clip), "face", tmp_path)
    recorder.state = "recording"
    taker = PreviewTaker(config(tmp_path, face_clip), {"face": _Camera(online=True, age=0.0)},
                         {"face": recorder}, tmp_path, redactor=slow)  # fmt: skip
    thread = taker.start()
    assert thread is not None
    assert inside.wait(30), "no preview was taken"
    taker.close()
    assert done.is_set()
    assert not thread.is_alive()
