"""People modes on the live paths of a camera whose detector tracks no people (the motion
detector): nobody may be shown unhidden. Measured on the pixels with the person detector
(yolox-nano) on the frames that leave the API."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest

import vigil.runtime
from tests.api.conftest import Api
from tests.api.test_live_video import URL, Player, decode, receive
from tests.conftest import require_file
from vigil.api import CameraStatus
from vigil.api.live import LiveView
from vigil.commands.serve import api_settings
from vigil.config.loader import parse_config
from vigil.config.models import RedactConfig
from vigil.detect import build_detector
from vigil.errors import ConfigError
from vigil.paths import shared_data_dir, shared_models_dir
from vigil.privacy.changes import thumbnail
from vigil.privacy.redactor import build_person_detector, check_person_model, tracks_people
from vigil.runtime.pipeline import CameraPipeline
from vigil.runtime.serve import SnapshotPublisher
from vigil.runtime.view import TrackSnapshot
from vigil.store import Role
from vigil.types import Frame, ImageArray

PEOPLE = RedactConfig.model_validate({"mode": "people", "style": "fill"})
CONFIG = """
redact: {mode: people, style: fill}
cameras:
  cam:
    sources: [{url: "synthetic://"}]
    detect: {model: motion}
  yolo:
    sources: [{url: "synthetic://"}]
  cars:
    sources: [{url: "synthetic://"}]
    detect: {labels: [car]}
"""


def people_frames() -> list[ImageArray]:
    """Frames 100-219 of the clip of people walking one by one (yolox-nano finds a person in
    most of them), halved to 384x216 (the size of an analysis sub-stream)."""
    path = require_file(shared_data_dir() / "clips" / "one-by-one-person-detection.mp4")
    out = []
    with av.open(str(path)) as box:
        for i, frame in enumerate(box.decode(video=0)):
            if i >= 220:
                break
            if i >= 100:
                out.append(frame.to_ndarray(format="bgr24", width=384, height=216))
    return out


def frames_with_people(detector: Any, frames: list[ImageArray]) -> list[int]:
    found = []
    for i, image in enumerate(frames):
        dets = detector.detect_batch([image])[0]
        if len(dets):
            found.append(i)
    return found


@pytest.fixture
def person_detector() -> Any:
    require_file(shared_models_dir() / "yolox_nano.onnx")
    return build_person_detector(PEOPLE)


def test_the_rule_of_which_cameras_tracks_hold_people() -> None:
    settings = api_settings(parse_config(CONFIG))
    config = parse_config(CONFIG)
    assert not tracks_people(config.camera("cam").detect)  # motion blobs: no person class
    assert tracks_people(config.camera("yolo").detect)
    assert not tracks_people(config.camera("cars").detect)  # a model without the person class
    assert dict(settings.camera_tracks_people) == {"cam": False, "yolo": True, "cars": False}
    assert not settings.tracks_people("unknown")  # unknown: assume not, detect on the frame


def test_live_video_of_a_motion_camera_hides_people(api: Api, person_detector: Any) -> None:
    frames = people_frames()
    raw = frames_with_people(person_detector, frames)
    assert len(raw) > len(frames) // 2, "the clip must show people for this test to mean anything"
    state = api.app.state.vigil
    # The StaticRuntime's camera has no person tracks, like a motion-detector camera.
    state.settings = dataclasses.replace(state.settings, camera_redact={"cam": PEOPLE})
    api.add_user("viewer", Role.VIEWER)
    client = api.login("viewer")
    width = frames[0].shape[1]
    with Player(api, "cam", frames), client.websocket_connect(
            URL.format("cam") + f"?width={width}") as ws:  # fmt: skip
        _, init, fragments = receive(ws, 8.0)
    live = decode(init, fragments)
    assert len(live) > 30
    leaks = frames_with_people(person_detector, live)
    assert not leaks, f"people found in {len(leaks)} of {len(live)} live frames: {leaks[:20]}"


def test_other_pixel_paths_of_a_motion_camera_hide_people(api: Api, person_detector: Any) -> None:
    """The MJPEG stream and the stream token's still (``LiveFrames``), the camera snapshot,
    the Redactor of event clips and exports, the MQTT camera snapshot: each runs the
    Redactor's own person detector on its frame (``people=None``)."""
    frames = people_frames()[::8]
    assert len(frames_with_people(person_detector, frames)) > len(frames) // 2
    state = api.app.state.vigil
    state.settings = dataclasses.replace(state.settings, camera_redact={"cam": PEOPLE})
    api.add_user("viewer", Role.VIEWER)
    client = api.login("viewer")
    width, height = frames[0].shape[1], frames[0].shape[0]
    api.runtime.set_status(CameraStatus("cam", True, "running", decode_fps=15.0))
    factory = state.export_redactor("cam", None)
    assert factory is not None
    export = factory((width, height))
    mqtt = SnapshotPublisher(parse_config(CONFIG), lambda _camera, _jpeg: None)
    shown = []
    try:
        for i, image in enumerate(frames):
            api.runtime.set_frame("cam", image, time=float(i + 1))
            jpegs = [state.live.jpeg(LiveView("cam", width, False, True), float(i + 1)),
                     client.get("/api/cameras/cam/snapshot").content,
                     mqtt.redacted_jpeg("cam", image)]  # fmt: skip
            shown += [cv2.imdecode(np.frombuffer(d, np.uint8), cv2.IMREAD_COLOR) for d in jpegs]
            shown.append(export.process(image))
    finally:
        mqtt.close()
    assert len(shown) == 4 * len(frames)
    leaks = frames_with_people(person_detector, shown)
    assert not leaks, f"people found in {len(leaks)} of {len(shown)} images"


def test_start_up_refuses_people_modes_without_a_person_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No person model at all: refused with the cameras named and the fixes, not shown."""
    monkeypatch.setenv("VIGIL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("VIGIL_MODELS_DIR", str(tmp_path / "empty"))
    config = parse_config(CONFIG)
    with pytest.raises(ConfigError) as caught:
        check_person_model(config)
    message = str(caught.value)
    assert "cam, cars" in message  # the camera with person tracks ("yolo") is not named
    assert "vigil models pull" in message
    assert "detect.model" in message
    # The demo's configuration (motion detector, the default redaction: faces) starts.
    demo = parse_config((Path(vigil.runtime.__file__).parent / "demo.yaml").read_text())
    assert demo.redact.mode == "faces"
    check_person_model(demo)


def test_start_up_accepts_people_modes_with_the_person_model() -> None:
    require_file(shared_models_dir() / "yolox_nano.onnx")
    check_person_model(parse_config(CONFIG))


ENTRY = """
cameras:
  yolo:
    sources: [{url: "synthetic://"}]
    detect: {fps: 10, labels: [person]}
    motion: {enabled: false}
    tracker: {min_hits: 3}
"""


def played(
    config: str, first: int, last: int, *, decided: bool
) -> tuple[list[ImageArray], list[TrackSnapshot]]:  # fmt: skip
    """Frames ``first``..``last`` of the one-by-one clip at 384x216 and, for each, the
    ``TrackSnapshot`` a camera worker of ``config``'s camera ``yolo`` hands out (a fresh
    pipeline at 10 fps); with ``decided``, the thumbnail of its analysed frame too."""
    path = require_file(shared_data_dir() / "clips" / "one-by-one-person-detection.mp4")
    frames = []
    with av.open(str(path)) as box:
        for i, frame in enumerate(box.decode(video=0)):
            if i > last:
                break
            if i >= first:
                frames.append(frame.to_ndarray(format="bgr24", width=384, height=216))
    camera = parse_config(config).camera("yolo")
    pipeline = CameraPipeline(camera, build_detector(camera.detect), (384, 216), source_fps=10)
    snaps = []
    for i, image in enumerate(frames):
        result = pipeline.process(Frame.from_bgr(image, seq=i, pts=i / 10, wall_time=i / 10))
        thumb = None
        if decided:
            assert result.decided is not None
            thumb = thumbnail(result.decided.bgr())
        snaps.append(TrackSnapshot.of(result.tracked, pipeline.class_names, i / 10.0,
                                      (384, 216), result.detections, decided=thumb))  # fmt: skip
    return frames, snaps


def entry_frames() -> tuple[list[ImageArray], list[TrackSnapshot]]:
    """Frames 61-80 of the one-by-one clip at 384x216, where the first person comes in
    (yolox-nano finds them first in frame 61), with the ``TrackSnapshot`` a camera worker
    hands out for each: a fresh pipeline on these frames, ``min_hits: 3``, so the person's
    first detections hold no confirmed track."""
    return played(ENTRY, 61, 80, decided=False)


def test_live_video_hides_people_before_their_track_is_confirmed(
    api: Api, person_detector: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A camera whose tracks hold people: a person who just came in has no confirmed track
    for ``min_hits`` detections, and must be hidden in those frames too."""
    frames, snaps = entry_frames()
    shown = set(frames_with_people(person_detector, frames))
    untracked = [i for i, s in enumerate(snaps) if i in shown and not s.tracks]
    assert len(untracked) >= 2, "the person's first frames must have no confirmed track"
    live = play_with_snapshots(api, monkeypatch, frames, snaps)
    assert len(live) > len(frames)  # the entry was shown at least once
    leaks = frames_with_people(person_detector, live)
    assert not leaks, f"people found in {len(leaks)} of {len(live)} live frames: {leaks[:20]}"


GAP = """
cameras:
  yolo:
    sources: [{url: "synthetic://"}]
    detect: {fps: 2.5, labels: [person]}
    motion: {enabled: false}
    tracker: {min_hits: 3}
"""


def gap_frames() -> tuple[list[ImageArray], list[TrackSnapshot]]:
    """Frames 56-70 of the one-by-one clip at 384x216 and the ``TrackSnapshot`` a camera
    worker hands out with each, analysing every 4th frame (``detect.fps`` 2.5 of 10): frames
    56, 60, 64, 68. The person comes in after frame 60 (yolox-nano finds them in 61 and 63,
    which carry the empty boxes of frame 60); each snapshot has the thumbnail of its
    analysed frame (``decided``), as ``CameraWorker.latest_tracks`` makes it."""
    return played(GAP, 56, 70, decided=True)


def play_with_snapshots(
    api: Api, monkeypatch: pytest.MonkeyPatch, frames: list[ImageArray],
    snaps: list[TrackSnapshot], redact: RedactConfig = PEOPLE,
) -> list[ImageArray]:  # fmt: skip
    """Eight seconds of the live video of ``cam`` (a camera whose tracks hold people) while
    the frames play in a loop at 10 fps, each with its own snapshot whatever the order of
    the encoder's reads (it reads the frame, then the tracks, in its own thread)."""
    state = api.app.state.vigil
    state.settings = dataclasses.replace(state.settings, camera_redact={"cam": redact},
                                         camera_tracks_people={"cam": True})  # fmt: skip
    assert state.live_person_detector("cam") is None  # the tracks' boxes, no detector
    current = threading.local()
    playing = {"index": 0}

    def latest_frame(camera: str) -> ImageArray:
        current.index = playing["index"]
        return frames[current.index].copy()

    monkeypatch.setattr(api.runtime, "latest_frame", latest_frame)
    monkeypatch.setattr(api.runtime, "latest_tracks",
                        lambda camera: snaps[getattr(current, "index", 0)])  # fmt: skip
    api.runtime.set_status(CameraStatus("cam", True, "running", decode_fps=10.0))
    api.add_user("viewer", Role.VIEWER)
    client = api.login("viewer")
    stop = threading.Event()

    def play() -> None:
        while not stop.wait(0.1):
            playing["index"] = (playing["index"] + 1) % len(frames)

    player = threading.Thread(target=play, daemon=True)
    player.start()
    try:
        with client.websocket_connect(URL.format("cam") + "?width=384") as ws:
            _, init, fragments = receive(ws, 8.0)
    finally:
        stop.set()
        player.join(5)
    return decode(init, fragments)


def test_live_video_hides_a_person_who_comes_in_between_analysed_frames(
    api: Api, person_detector: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``detect.fps`` below the decode rate: the frames between two analysed frames carry
    the boxes of the last one, which hold nobody who came in since. What changed since that
    frame outside the boxes is hidden too (``vigil.privacy.changes``)."""
    frames, snaps = gap_frames()
    shown = set(frames_with_people(person_detector, frames))
    gap = [i for i, s in enumerate(snaps) if i in shown and not s.people()]
    assert len(gap) >= 2, "the person must show in frames whose snapshot holds nobody"
    # No hold: the boxes of the loop's last frames must not cover its next entry.
    redact = PEOPLE.model_copy(update={"hold_frames": 0})
    live = play_with_snapshots(api, monkeypatch, frames, snaps, redact)
    assert len(live) > len(frames)  # the entry was shown at least once
    leaks = frames_with_people(person_detector, live)
    assert not leaks, f"people found in {len(leaks)} of {len(live)} live frames: {leaks[:20]}"


def test_live_video_hides_people_while_the_cameras_detection_is_off(
    api: Api, person_detector: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A camera whose tracks hold people, with its detection switched off: its worker hands
    out empty tracks of no analysed frame (``TrackSnapshot()``), which say nothing about who
    is in the picture. Live video then runs the person detector, as for a motion camera."""
    frames = people_frames()[::2]
    assert len(frames_with_people(person_detector, frames)) > len(frames) // 2
    live = play_with_snapshots(api, monkeypatch, frames, [TrackSnapshot()] * len(frames))
    assert len(live) > 30
    leaks = frames_with_people(person_detector, live)
    assert not leaks, f"people found in {len(leaks)} of {len(live)} live frames: {leaks[:20]}"
    # The picture is not simply hidden whole: the person detector's boxes are.
    assert np.mean([float(np.std(image)) for image in live[-10:]]) > 10
