"""Redaction benchmark: residual faces (YuNet as an independent judge) and speed vs deface.

Run from the repository root::

    python bench/redaction.py [--frames 60] [--clip-frames 100]

Table 1, residual faces: for each shared clip (the first ``--clip-frames`` frames), YuNet
(``yunet_face_640.onnx`` through ``cv2.FaceDetectorYN``, a detector independent of the
CenterFace model both tools use) counts faces in the input, in Vigil's redacted output and in
deface's output. The goal is zero after.

Table 2, speed: the walking clip upscaled with FFmpeg to 480p, 720p and 1080p (``--frames``
frames each); end-to-end file redaction (decode, detect, redact, encode H.264) by Vigil's
``redact_file`` and by deface's own ``video_detect`` in the same process, models loaded
before the clock starts. The ratio is measured in the same run, on the same input.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import av
import cv2

from vigil.config.models import RedactConfig
from vigil.media.h264 import probe
from vigil.paths import shared_data_dir, shared_models_dir
from vigil.privacy import build_redactor, redact_file

CLIPS = (
    "face-demographics-walking.gif",
    "people-detection.gif",
    "person-bicycle-car-detection.gif",
    "worker-zone-detection.gif",
    "one-by-one-person-detection.mp4",
    "car-detection.mp4",
)
SIZES = {"480p": (854, 480), "720p": (1280, 720), "1080p": (1920, 1080)}


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def head(source: Path, frames: int, out: Path) -> Path:
    """The first ``frames`` frames of ``source`` as a lossless-ish H.264 MP4 (audio dropped)."""
    ffmpeg("-i", str(source), "-frames:v", str(frames), "-an", "-c:v", "libx264", "-crf", "12",
           "-pix_fmt", "yuv420p", str(out))  # fmt: skip
    return out


def upscaled(source: Path, size: tuple[int, int], frames: int, out: Path) -> Path:
    ffmpeg("-stream_loop", "3", "-i", str(source), "-frames:v", str(frames),
           "-vf", f"scale={size[0]}:{size[1]}:flags=bicubic,fps=12.5", "-an", "-c:v", "libx264",
           "-crf", "14", "-pix_fmt", "yuv420p", str(out))  # fmt: skip
    return out


class Judge:
    """YuNet face counts per video, at the video's own resolution."""

    def __init__(self, model: Path) -> None:
        self.model = model

    def count(self, video: Path) -> tuple[int, int]:
        """(faces in all frames, frames with at least one face)."""
        detector: Any = None
        faces = frames_with = 0
        with av.open(str(video)) as container:
            for frame in container.decode(video=0):
                image = frame.to_ndarray(format="bgr24")
                if detector is None:
                    h, w = image.shape[:2]
                    detector = cv2.FaceDetectorYN.create(str(self.model), "", (w, h), 0.6, 0.3)
                _, found = detector.detect(image)
                n = 0 if found is None else len(found)
                faces += n
                frames_with += n > 0
        return faces, frames_with


def run_deface(source: Path, target: Path, centerface: Any) -> float:
    """deface's own file pipeline with its CLI defaults; returns wall seconds."""
    from deface.deface import video_detect

    started = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()):  # its tqdm bar
        video_detect(
            ipath=str(source), opath=str(target), centerface=centerface, threshold=0.2,
            enable_preview=False, cam=False, nested=False, replacewith="blur",
            mask_scale=1.3, ellipse=True, draw_scores=False,
            ffmpeg_config={"codec": "libx264"},
        )  # fmt: skip
    return time.perf_counter() - started


def run_vigil(source: Path, target: Path) -> float:
    info = probe(source)
    config = RedactConfig()
    redactor = build_redactor(config, (info.width, info.height))
    started = time.perf_counter()
    redact_file(source, target, config, redactor=redactor)
    return time.perf_counter() - started


def load_deface() -> Any:
    from deface.centerface import CenterFace

    with contextlib.redirect_stdout(io.StringIO()):  # "Running on CPUExecutionProvider."
        return CenterFace()


def residual_table(tmp: Path, judge: Judge, clip_frames: int, centerface: Any) -> None:
    print(f"\nResidual faces (YuNet, score >= 0.6), first {clip_frames} frames of each clip")
    print(f"{'clip':36} {'frames':>6} {'input':>12} {'vigil':>12} {'deface':>12}")
    clips = shared_data_dir() / "clips"
    for name in CLIPS:
        source = clips / name
        if not source.exists():
            print(f"{name:36} missing")
            continue
        src = head(source, clip_frames, tmp / f"{source.stem}-in.mp4")
        ours, theirs = tmp / f"{source.stem}-vigil.mp4", tmp / f"{source.stem}-deface.mp4"
        run_vigil(src, ours)
        run_deface(src, theirs, centerface)
        frames = probe(src).frames

        def cell(counts: tuple[int, int]) -> str:
            return f"{counts[0]} ({counts[1]}f)"

        print(f"{name:36} {frames:>6} {cell(judge.count(src)):>12} "
              f"{cell(judge.count(ours)):>12} {cell(judge.count(theirs)):>12}")  # fmt: skip
    print("  cells: faces found in all frames (frames with any face)")


def speed_table(tmp: Path, judge: Judge, frames: int, centerface: Any) -> None:
    source = shared_data_dir() / "clips" / "face-demographics-walking.gif"
    print(f"\nSpeed: end-to-end file redaction, {frames} frames, walking clip upscaled")
    print(f"{'size':8} {'vigil fps':>10} {'deface fps':>11} {'ratio':>6} "
          f"{'residual vigil':>15} {'residual deface':>16}")  # fmt: skip
    for label, size in SIZES.items():
        src = upscaled(source, size, frames, tmp / f"walk-{label}.mp4")
        ours, theirs = tmp / f"walk-{label}-vigil.mp4", tmp / f"walk-{label}-deface.mp4"
        t_ours = run_vigil(src, ours)
        t_theirs = run_deface(src, theirs, centerface)
        print(f"{label:8} {frames / t_ours:>10.1f} {frames / t_theirs:>11.1f} "
              f"{t_theirs / t_ours:>5.2f}x {judge.count(ours)[0]:>15} "
              f"{judge.count(theirs)[0]:>16}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=60, help="frames per size (speed)")
    parser.add_argument("--clip-frames", type=int, default=100, help="frames per clip (faces)")
    parser.add_argument("--skip-residual", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--keep", type=Path, help="keep the videos in this folder")
    args = parser.parse_args()
    model = shared_models_dir() / "yunet_face_640.onnx"
    if not model.exists():
        print(f"missing {model}", file=sys.stderr)
        return 1
    judge, centerface = Judge(model), load_deface()
    print(f"cv2 {cv2.__version__}, {cv2.getNumThreads()} OpenCV threads")
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as scratch:
        tmp = str(args.keep or scratch)
        if not args.skip_residual:
            residual_table(Path(tmp), judge, args.clip_frames, centerface)
        if not args.skip_speed:
            speed_table(Path(tmp), judge, args.frames, centerface)
    return 0


if __name__ == "__main__":
    sys.exit(main())
