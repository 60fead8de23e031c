"""`vigil analyze` and `vigil demo` end to end: real decoding, real model, real files out."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import av
import pytest

from vigil.cli import main
from vigil.ingest.synthetic import DEFAULT_DOWN_CROSSINGS, DEFAULT_UP_CROSSINGS
from vigil.motion import MotionGate, MotionResult
from vigil.types import Frame

SYNTHETIC = "synthetic://?width=640&height=360&fps=10&duration=20"

LINE_CONFIG = """
detect: {model: motion, fps: 10}
tracker: {new_track_threshold: 0.5, high_threshold: 0.4}
lines:
  middle:
    points: [[0.05, 0.5], [0.95, 0.5]]
"""


def read_events(out: Path) -> list[dict[str, object]]:
    lines = (out / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_synthetic_crossings_are_counted_exactly(tmp_path: Path) -> None:
    config = tmp_path / "rules.yaml"
    config.write_text(LINE_CONFIG)
    out = tmp_path / "out"
    args = ["analyze", SYNTHETIC, "--config", str(config), "--out", str(out), "--quiet", "--plot"]
    assert main(args) == 0
    assert (out / "counts.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    counts = json.loads((out / "counts.json").read_text())
    total = counts["lines"]["middle"]["total"]
    assert (total["a_to_b"], total["b_to_a"]) == (DEFAULT_DOWN_CROSSINGS, DEFAULT_UP_CROSSINGS)
    events = read_events(out)
    assert len(events) == DEFAULT_DOWN_CROSSINGS + DEFAULT_UP_CROSSINGS
    assert all(e["lines"] == ["middle"] and e["label"] == "motion" for e in events)
    assert len({e["track_id"] for e in events}) == len(events)
    rows = [line.split(",") for line in (out / "tracks.txt").read_text().splitlines()]
    assert rows
    assert all(len(r) == 10 for r in rows)
    assert {int(r[1]) for r in rows} == {e["track_id"] for e in events}


def test_demo_runs_and_reports_the_expected_counts(tmp_path: Path) -> None:
    assert main(["demo", "--no-serve", "--out", str(tmp_path), "--no-video"]) == 0
    assert (tmp_path / "events.jsonl").exists()


# One line across the way out of the room: people walk from the table (x ≈ 0.6) to the right
# edge, crossing x = 0.75 from side B (left of the downward arrow is screen-right) to side A.
ROOM = """
detect: {labels: [person]}
lines:
  exit:
    points: [[0.75, 0.55], [0.75, 1.0]]
zones:
  table:
    polygon: [[0.4, 0.6], [0.75, 0.6], [0.75, 1.0], [0.4, 1.0]]
"""


def test_people_in_real_footage(tmp_path: Path, clips_dir: Path, yolox_nano_path: Path) -> None:
    config = tmp_path / "room.yaml"
    config.write_text(ROOM)
    out = tmp_path / "out"
    clip = clips_dir / "one-by-one-person-detection.mp4"
    args = [
        "analyze",
        str(clip),
        "--config",
        str(config),
        "--model",
        str(yolox_nano_path),
        "--out",
        str(out),
        "--quiet",
        "--snapshots",
    ]
    assert main(args) == 0
    events = read_events(out)
    # Six people come to the table one by one and leave again.
    assert 5 <= len(events) <= 8
    assert all(e["label"] == "person" for e in events)
    assert sum("table" in e["zones"] for e in events) >= 5
    for e in events:
        assert 0.0 <= e["start"] < e["end"] <= 140.0
        assert e["has_snapshot"] is True
        x1, y1, x2, y2 = e["box"]  # normalised to the frame
        assert 0 <= x1 < x2 <= 1
        assert 0 <= y1 < y2 <= 1
        assert (out / "snapshots" / f"{e['id']}.jpg").stat().st_size > 1000
    counts = json.loads((out / "counts.json").read_text())
    leaving = counts["lines"]["exit"]["by_class"].get("person", {}).get("b_to_a", 0)
    assert 4 <= leaving <= 7


def test_car_in_real_footage(tmp_path: Path, clips_dir: Path, yolox_nano_path: Path) -> None:
    """The street clip is 3.3 s long: analyse every frame and accept half-second events."""
    config = tmp_path / "short.yaml"
    config.write_text("detect: {fps: 12.5}\nevents: {min_duration: 0.5}\n")
    out = tmp_path / "out"
    clip = clips_dir / "person-bicycle-car-detection.gif"
    assert (
        main(
            [
                "analyze",
                str(clip),
                "--config",
                str(config),
                "--model",
                str(yolox_nano_path),
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    cars = [e for e in read_events(out) if e["label"] == "car"]
    assert len(cars) == 1
    x1, _, x2, y2 = cars[0]["box"]  # the car drives out on the upper left (of 480×270)
    assert x2 < 200 / 480
    assert y2 < 150 / 270
    assert x2 - x1 > 60 / 480
    # Without --snapshots no image is written, and no event says it has one.
    assert cars[0]["has_snapshot"] is False
    assert not (out / "snapshots").exists()


def test_annotated_video_covers_every_frame(
    tmp_path: Path, clips_dir: Path, yolox_nano_path: Path
) -> None:
    out = tmp_path / "out"
    clip = clips_dir / "people-detection.gif"
    assert (
        main(
            [
                "analyze",
                str(clip),
                "--model",
                str(yolox_nano_path),
                "--out",
                str(out),
                "--quiet",
                "--annotate",
            ]
        )
        == 0
    )
    with av.open(str(clip)) as src:
        expected = sum(1 for _ in src.decode(video=0))
    with av.open(str(out / "annotated.mp4")) as video:
        assert sum(1 for _ in video.decode(video=0)) == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["analyze", "/nonexistent/clip.mp4"], "/nonexistent/clip.mp4"),
        (["analyze", SYNTHETIC, "--model", "/nonexistent/model.onnx"], "model"),
        (["analyze", SYNTHETIC, "--model", "motion", "--annotate", "--unredacted"], "reason"),
        (["analyze", SYNTHETIC, "--config", "/nonexistent/rules.yaml"], "rules.yaml"),
    ],
)
def test_bad_input_fails_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main([*args, "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "error:" in err
    assert message in err


def test_moving_carry_keeps_its_bound_and_the_counts(
    clips_dir: Path, yolox_nano_path: Path
) -> None:
    """The people clip through the pipeline with and without carrying moving tracks: the
    carry never goes beyond ``carry_frames`` analysed frames in a row, saves inferences, and
    the table visits and line counts stay the same."""
    from vigil.config import parse_config
    from vigil.detect.onnx import OnnxDetector
    from vigil.ingest import open_source
    from vigil.runtime.pipeline import CameraPipeline

    clip = str(clips_dir / "one-by-one-person-detection.mp4")
    base = parse_config(ROOM).for_source(clip)
    detector = OnnxDetector(yolox_nano_path, labels=["person"], threads=2)
    results = {}
    for bound in (0, 2):
        cam = base.model_copy(
            update={"motion": base.motion.model_copy(update={"carry_frames": bound})}
        )
        source = open_source(clip)
        info = source.open()
        pipeline = CameraPipeline(cam, detector, (info.width, info.height), source_fps=info.fps)
        longest = 0
        for frame in source.frames():
            pipeline.process(frame)
            assert pipeline.moving.in_row <= bound
            longest = max(longest, pipeline.moving.in_row)
        source.close()
        counts = pipeline.rules.counts()
        results[bound] = (
            counts["lines"]["exit"]["total"],
            counts["zones"]["table"]["entries"]["total"],
            pipeline.stats.images_inferred,
        )
        assert longest == bound  # the bound was reached, so it was what stopped the carry
    assert results[2][:2] == results[0][:2]
    assert results[0][1] == 6  # six visits to the table
    assert results[2][2] < 0.8 * results[0][2]


def test_a_decode_thread_changes_no_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "rules.yaml"
    config.write_text(LINE_CONFIG)
    # Where the motion gate runs: in the decode thread, when there is one.
    threads: list[str] = []
    update = MotionGate.update

    def recorded(gate: MotionGate, frame: Frame) -> MotionResult:
        threads.append(threading.current_thread().name)
        return update(gate, frame)

    monkeypatch.setattr(MotionGate, "update", recorded)
    ran_in = []
    outs = []
    for extra in ([], ["--no-decode-thread"]):
        out = tmp_path / f"out{len(extra)}"
        args = ["analyze", SYNTHETIC, "--config", str(config), "--out", str(out), "--quiet"]
        assert main(args + extra) == 0
        outs.append(((out / "tracks.txt").read_text(), (out / "counts.json").read_text()))
        ran_in.append(set(threads))
        threads.clear()
    assert outs[0] == outs[1]
    assert outs[0][0]
    assert ran_in == [{"vigil-decode"}, {"MainThread"}]


GAP = """
detect: {fps: 2.5}
motion: {enabled: false}
tracker: {min_hits: 3}
redact: {mode: people, style: fill}
"""


def test_annotated_video_hides_a_person_coming_in_between_analysed_frames(
    tmp_path: Path, clips_dir: Path, yolox_nano_path: Path
) -> None:
    """Frames 40-75 of the one-by-one clip at 384x216, every 4th analysed (40, 44, ... 60,
    64): the person comes in after frame 60, and the frames until 64 carry the boxes of 60,
    which hold nobody. What changed since frame 60 is hidden too: yolox-nano finds nobody in
    the annotated video (without, it finds the person in frames 61 and 63)."""
    import subprocess

    from vigil.config.models import RedactConfig
    from vigil.privacy.redactor import build_person_detector

    clip = tmp_path / "entry.mp4"
    source = clips_dir / "one-by-one-person-detection.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(source),
                    "-vf", "trim=start_frame=40:end_frame=76,setpts=PTS-STARTPTS,scale=384:216",
                    "-c:v", "libx264", "-crf", "12", "-pix_fmt", "yuv420p", str(clip)],
                   check=True)  # fmt: skip
    config = tmp_path / "gap.yaml"
    config.write_text(GAP)
    out = tmp_path / "out"
    args = ["analyze", str(clip), "--config", str(config), "--model", str(yolox_nano_path),
            "--out", str(out), "--quiet", "--annotate"]  # fmt: skip
    assert main(args) == 0
    detector = build_person_detector(RedactConfig())
    with av.open(str(clip)) as box:
        raw = [f.to_ndarray(format="bgr24") for f in box.decode(video=0)]
    with av.open(str(out / "annotated.mp4")) as video:
        shown = [f.to_ndarray(format="bgr24") for f in video.decode(video=0)]
    assert len(shown) == len(raw) == 36
    assert len(detector.detect_batch([raw[63 - 40]])[0]), "the person must be in frame 63"
    leaks = [40 + i for i, image in enumerate(shown) if len(detector.detect_batch([image])[0])]
    assert not leaks, f"people found in the annotated frames {leaks}"
