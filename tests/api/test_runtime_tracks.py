"""``latest_tracks`` and ``counts`` of the runtime as the API sees them: a real worker on
the synthetic scene (motion-blob detector, the real tracker and rules)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.runtime.test_supervisor import LINE, ListSink, make_config
from vigil.api.runtime import StaticRuntime, TrackSnapshot
from vigil.config.models import SourceConfig
from vigil.ingest import Source, StatusCallback, open_source
from vigil.ingest.synthetic import DEFAULT_DOWN_CROSSINGS, DEFAULT_UP_CROSSINGS
from vigil.privacy.changes import thumbnail
from vigil.runtime.worker import CameraWorker
from vigil.types import Detections


def unpaced(source: SourceConfig, camera: str, on_status: StatusCallback) -> Source:
    return open_source(source.url, camera)


def test_worker_exposes_tracks_of_the_last_frame_and_live_counts(tmp_path: Path) -> None:
    config = make_config(tmp_path, {
        "a": {"sources": [{"url": "synthetic://?fps=10&duration=20"}], "lines": LINE},
    })  # fmt: skip
    worker = CameraWorker(config.camera("a"), None, ListSink(), source_factory=unpaced)
    assert worker.latest_tracks() == TrackSnapshot()
    assert worker.counts() == {}
    seen: list[TrackSnapshot] = []
    original = worker._on_frame

    def spy(*args: object, **kwargs: object) -> None:
        original(*args, **kwargs)  # type: ignore[arg-type]
        seen.append(worker.latest_tracks())

    worker._on_frame = spy  # type: ignore[method-assign]
    worker.run()
    snap = worker.latest_tracks()
    assert snap.time is not None
    assert snap.width > 0
    assert snap.height > 0
    with_tracks = [s for s in seen if s.tracks]
    assert with_tracks, "the scene's walkers are tracked on some frames"
    for s in with_tracks:
        for t in s.tracks:
            assert t.id >= 0
            assert t.label
            assert all(0.0 <= v <= 1.0 for v in t.box)
            assert t.box[0] <= t.box[2]
    # The detector's boxes besides the tracks: what no confirmed track holds yet.
    with_detections = [s for s in seen if s.detections]
    assert with_detections, "the walkers are detected on some frames"
    assert all(d.id == -1 for s in with_detections for d in s.detections)
    first = next(i for i, s in enumerate(seen) if s.detections)
    assert not seen[first].tracks, "a walker's first detection holds no confirmed track yet"
    times = [s.time for s in seen if s.time is not None]
    assert times == sorted(times)
    totals = worker.counts()["lines"]["middle"]["total"]
    assert totals == {"a_to_b": DEFAULT_DOWN_CROSSINGS, "b_to_a": DEFAULT_UP_CROSSINGS}


def test_worker_tracks_carry_the_thumbnail_of_their_analysed_frame(tmp_path: Path) -> None:
    """``TrackSnapshot.decided``: the ``vigil.privacy.changes`` thumbnail of the analysed
    frame the boxes come from, made from it as ``latest_frame`` gives frames: equal to the
    newest frame's on an analysed frame, the last analysed one's on the frames between."""
    config = make_config(tmp_path, {
        "a": {"sources": [{"url": "synthetic://?fps=10&duration=6"}], "detect": {"fps": 2.5}},
    })  # fmt: skip
    worker = CameraWorker(config.camera("a"), None, ListSink(), source_factory=unpaced)
    seen: list[tuple[bool, np.ndarray, np.ndarray | None]] = []
    original = worker._on_frame

    def spy(*args: object, **kwargs: object) -> None:
        original(*args, **kwargs)  # type: ignore[arg-type]
        last = worker._last_result
        frame = worker.latest_frame()
        assert last is not None
        assert frame is not None
        seen.append((last[0].analysed, thumbnail(frame), worker.latest_tracks().decided))

    worker._on_frame = spy  # type: ignore[method-assign]
    worker.run()
    assert sum(a for a, _, _ in seen) < len(seen) / 2, "most frames are not analysed"
    decided: np.ndarray | None = None
    moved = 0
    for analysed, now, thumb in seen:
        assert thumb is not None
        if analysed:
            assert np.array_equal(thumb, now)
            decided = now
        else:
            assert decided is not None
            assert np.array_equal(thumb, decided)
            moved += not np.array_equal(thumb, now)
    assert moved, "the scene moves between analysed frames"


@pytest.mark.parametrize(
    ("size", "xyxy", "expected"),
    [
        ((200, 100), [[0, 0, 100, 50]], (0.0, 0.0, 0.5, 0.5)),
        ((200, 100), [[-10, -5, 250, 120]], (0.0, 0.0, 1.0, 1.0)),  # clipped to the frame
        ((640, 360), [[64, 36, 320, 180]], (0.1, 0.1, 0.5, 0.5)),
    ],
)
def test_track_snapshot_normalises_boxes(
    size: tuple[int, int], xyxy: list[list[float]], expected: tuple[float, ...]
) -> None:
    dets = Detections(np.array(xyxy, np.float32), np.array([0.87654], np.float32),
                      np.array([1]), np.array([7]))  # fmt: skip
    snap = TrackSnapshot.of(dets, ["person", "car"], 12.5, size)
    assert (snap.time, snap.width, snap.height) == (12.5, *size)
    (track,) = snap.tracks
    assert (track.id, track.label, track.score) == (7, "car", 0.8765)
    assert track.box == pytest.approx(expected)


def test_static_runtime_tracks_counts_and_frame_time() -> None:
    from vigil.api.runtime import CameraStatus

    rt = StaticRuntime({"a": CameraStatus("a", True, "running")})
    assert rt.latest_tracks("a") == TrackSnapshot() == rt.latest_tracks("nope")
    assert rt.counts("a") == {}
    with pytest.raises(KeyError):
        rt.counts("nope")
    rt.set_counts("a", {"lines": {}})
    assert rt.counts("a") == {"lines": {}}
    rt.set_frame("a", np.zeros((4, 4, 3), np.uint8), time=5.0)
    assert rt.cameras()[0].last_frame_time == 5.0


def test_people_modes_take_the_detections_no_confirmed_track_holds_yet() -> None:
    """A person's first detections (``min_hits``) hold no confirmed track: the previews and
    ``vigil analyze`` hide them too, like the live video."""
    from vigil.runtime.analyze import _Outputs
    from vigil.runtime.pipeline import FrameResult
    from vigil.runtime.previews import _people
    from vigil.types import Frame

    raw = Detections(np.array([[10, 10, 50, 90], [100, 20, 180, 60]], np.float32),
                     np.array([0.6, 0.7], np.float32), np.array([0, 1]))  # fmt: skip
    snap = TrackSnapshot.of(Detections.empty(), ["person", "car"], 1.0, (200, 100), raw)
    assert not snap.tracks
    assert [(t.id, t.label) for t in snap.people()] == [(-1, "person")]
    people = _people(snap, (400, 200))  # the preview's size: twice the analysed frame's
    assert people.xyxy.tolist() == [[20.0, 20.0, 100.0, 180.0]]
    outputs = object.__new__(_Outputs)
    outputs._person = 0
    image = np.zeros((100, 200, 3), np.uint8)
    result = FrameResult(Frame.from_bgr(image), True, Detections.empty(), detections=raw)
    found = outputs._people(result)
    assert found is not None
    assert found.xyxy.tolist() == [[10.0, 10.0, 50.0, 90.0]]
    assert found.tracker_id.tolist() == [-1]
