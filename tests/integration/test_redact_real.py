"""``vigil redact`` end to end on real footage, checked by an independent face detector.

YuNet (``cv2.FaceDetectorYN``, not the CenterFace used for redaction) must find the faces in
the input and none in the output; the MP4 keeps its audio, frame count and duration; and a
broken face detector leaves no output file at all; the output has a keyframe at least every
2 s and its index first, as exports do.
"""

from __future__ import annotations

import importlib.resources
import subprocess
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from tests.ffprobe import keyframe_gaps, top_level_boxes
from vigil.cli import main
from vigil.config.models import RedactConfig
from vigil.errors import PrivacyError
from vigil.privacy import redact_file
from vigil.types import FloatArray, ImageArray


def _frames(path: Path) -> list[ImageArray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]


def _yunet_faces(model: Path, images: list[ImageArray]) -> list[int]:
    h, w = images[0].shape[:2]
    detector = cv2.FaceDetectorYN.create(str(model), "", (w, h), 0.5, 0.3, 5000)
    counts = []
    for image in images:
        _, faces = detector.detect(image)
        counts.append(0 if faces is None else len(faces))
    return counts


def _stream_facts(path: Path) -> dict[str, tuple[int, float]]:
    """``{type: (frames, seconds)}`` per stream, counted by decoding-free demuxing."""
    facts: dict[str, tuple[int, float]] = {}
    with av.open(str(path)) as container:
        for stream in container.streams:
            packets = [p for p in container.demux(stream) if p.dts is not None]
            end = max(float((p.pts + (p.duration or 0)) * p.time_base) for p in packets)
            start = min(float(p.pts * p.time_base) for p in packets)
            facts[stream.type] = (len(packets), end - start)
            container.seek(0)
    return facts


def test_gif_in_mp4_out_no_residual_faces(
    clips_dir: Path, yunet_path: Path, tmp_path: Path
) -> None:
    source = clips_dir / "face-demographics-walking.gif"
    target = tmp_path / "redacted.mp4"
    assert main(["redact", str(source), str(target), "--no-progress"]) == 0
    before, after = _frames(source), _frames(target)
    assert len(after) == len(before)
    assert after[0].shape == before[0].shape  # 480x270: even, no padding
    faces_before = _yunet_faces(yunet_path, before)
    assert sum(faces_before) >= len(before)  # the input really shows faces
    assert _yunet_faces(yunet_path, after) == [0] * len(after)


@pytest.fixture
def short_mp4_with_audio(clips_dir: Path, tmp_path: Path) -> Path:
    """The first 3 s of car-detection.mp4 (H.264 + AAC), stream-copied."""
    out = tmp_path / "cars.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(clips_dir / "car-detection.mp4"), "-t", "3",
         "-c", "copy", str(out)],
        check=True,
    )  # fmt: skip
    return out


def test_mp4_keeps_audio_frames_and_duration(short_mp4_with_audio: Path, tmp_path: Path) -> None:
    target = tmp_path / "out.mp4"
    report = redact_file(short_mp4_with_audio, target, RedactConfig(mode="faces"))
    before, after = _stream_facts(short_mp4_with_audio), _stream_facts(target)
    assert report.audio
    assert set(after) == {"video", "audio"}
    assert after["audio"] == before["audio"]  # remuxed packet for packet
    assert after["video"][0] == before["video"][0] == report.frames
    assert after["video"][1] == pytest.approx(before["video"][1], abs=0.01)
    with av.open(str(target)) as container:
        assert container.streams.video[0].codec_context.name == "h264"


def test_output_has_regular_keyframes_and_its_index_first(tmp_path: Path) -> None:
    """An input with one keyframe in 6 s: the redacted file still seeks every 2 s at most, and
    a player starts it before reading its end (``moov`` before ``mdat``)."""
    source = tmp_path / "one-gop.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=12.5",
         "-t", "6", "-c:v", "libx264", "-g", "1000", "-pix_fmt", "yuv420p", str(source)],
        check=True, timeout=120,
    )  # fmt: skip
    assert len(keyframe_gaps(source)) == 1, "the input has a single keyframe"
    target = tmp_path / "out.mp4"
    assert main(["redact", str(source), str(target), "--no-progress"]) == 0
    gaps = keyframe_gaps(target)
    assert len(gaps) >= 3, gaps
    assert max(gaps) <= 2.0, gaps
    boxes = top_level_boxes(target.read_bytes())
    assert boxes.index("moov") < boxes.index("mdat"), f"faststart: {boxes}"


def test_masks_applied_to_every_output_frame(clips_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "masked.mp4"
    code = main(["redact", str(clips_dir / "people-detection.gif"), str(target), "--no-progress",
                 "--mask", "0,0 0.5,0 0.5,0.5 0,0.5"])  # fmt: skip
    assert code == 0
    for image in _frames(target):
        # Black after H.264 (limited range, lossy): near zero, not exactly zero.
        assert np.percentile(image[:125, :230], 99) < 24


class _Broken:
    def detect(self, image: ImageArray) -> FloatArray:
        raise PrivacyError("the face detector is broken")


def test_broken_detector_leaves_no_output(clips_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "never.mp4"
    with pytest.raises(PrivacyError, match="broken"):
        redact_file(clips_dir / "face-demographics-walking.gif", target, RedactConfig(),
                    face_detector=_Broken())  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_missing_face_model_fails_before_writing(
    clips_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def missing(name: str) -> None:
        raise ModuleNotFoundError(f"No module named {name!r}")

    monkeypatch.setattr(importlib.resources, "files", missing)
    target = tmp_path / "never.mp4"
    code = main(["redact", str(clips_dir / "face-demographics-walking.gif"), str(target),
                 "--no-progress"])  # fmt: skip
    assert code == 2
    assert "pip install --force-reinstall vigil" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_people_mode_on_real_clip(clips_dir: Path, tmp_path: Path, yolox_nano_path: Path) -> None:
    pytest.importorskip("vigil.detect.onnx")
    target = tmp_path / "people.mp4"
    code = main(["redact", str(clips_dir / "people-detection.gif"), str(target), "--no-progress",
                 "--mode", "people", "--style", "fill"])  # fmt: skip
    assert code == 0
    assert len(_frames(target)) == len(_frames(clips_dir / "people-detection.gif"))
