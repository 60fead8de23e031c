"""Frames/s of `vigil analyze` against the naive pipeline and against its own stage limits.

The naive pipeline is what a user would write first: OpenCV ``VideoCapture``, YOLOX-Nano on
every frame, the ``trackers`` package's ByteTrack and a ``supervision`` ``LineZone``. Both
use the same ONNX model through the same ONNX Runtime settings, and the same line, so the
difference is the pipeline: decoding only the luma plane, converting and scaling only what
the detector needs in one FFmpeg call, sampling at the detect rate and skipping quiet frames.

Stage limits, measured alone in the same run: decode only (every frame, luma plane) and
detector only (one full-frame inference). The pipeline's bound is its slowest stage at the
rate the pipeline uses it: ``min(decode fps, detector fps x frames / images inferred)``; the
sum of the two stages' costs per frame is printed too (on two cores the detector's threads
take both, so decoding cannot hide behind inference).

Levers, each measured alone and all together against the old pipeline (``Levers``): carrying
moving tracks without the detector (``motion.carry_frames``), leaving undecoded the frames the
sampler drops and nothing refers to, converting only the regions to BGR, a decode thread (and
that thread running the sampler and motion gate ahead of the analysis, ``CameraPipeline.prepare``)
and ONNX Runtime's thread count (2, the old default, and `vigil analyze`'s default with its
decode thread, one per core less one; one row where that comes to 2). Every row prints line
counts and table visits: a lever that changes them is not a speed-up. ``--repeat N``
interleaves N rounds of every lever (ABAB) and shows the median run; ``cpu s`` is this
process's CPU time, steadier than wall time when other work shares the cores; ``main s``
the analysis thread's alone (the critical path when the decode thread has a core of its own).

Run: ``python bench/pipeline.py [--quick] [--repeat N]``. Prints a table and ratios; writes
``bench/results/pipeline.png``. Needs the bench extra and ``ffmpeg`` for the 1080p copy.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from vigil.config import parse_config
from vigil.config.models import ResolvedCamera
from vigil.detect.onnx import OnnxDetector
from vigil.detect.threads import SHARED_MODEL_THREADS, detector_threads
from vigil.ingest import open_source
from vigil.paths import shared_data_dir, shared_models_dir
from vigil.runtime.analyze import AnalyzeOptions, analyze
from vigil.types import Frame, ImageArray

T = TypeVar("T")
RESULTS = Path(__file__).resolve().parent / "results"
THREADS = SHARED_MODEL_THREADS  # the naive pipeline's and the old default
# People leave the table (x ≈ 0.6) towards the right edge, crossing x = 0.75.
RULES = """
detect: {labels: [person], threads: 2}
lines:
  exit:
    points: [[0.75, 0.55], [0.75, 1.0]]
zones:
  table:
    polygon: [[0.4, 0.6], [0.75, 0.6], [0.75, 1.0], [0.4, 1.0]]
"""


@dataclass(frozen=True)
class Levers:
    """What `vigil analyze` may use beyond the old pipeline (each measured alone and all)."""

    carry: int = 0  # motion.carry_frames: moving tracks carried without the detector
    skip: bool = False  # leave undecoded the frames the sampler drops and nothing refers to
    crops: bool = False  # convert only the regions to BGR (else slice the full conversion)
    thread: bool = False  # decode in a thread of its own
    #: That thread also runs sampler and motion gate (CameraPipeline.prepare); None: as
    #: `vigil analyze` decides, by the frame size (vigil.runtime.analyze.gate_ahead).
    ahead: bool | None = False
    ort_threads: int = THREADS  # ONNX Runtime intra-op threads

    def label(self) -> str:
        parts = [f"carry {self.carry}"] if self.carry else []
        parts += ["skip decode"] * self.skip + ["crops"] * self.crops
        parts += ["decode thread"] * self.thread
        if self.thread and self.ahead is not False:
            parts.append("gate ahead" if self.ahead else "gate ahead up to 720p")
        if self.ort_threads != THREADS:
            plural = "s" if self.ort_threads > 1 else ""
            parts.append(f"{self.ort_threads} ORT thread{plural}")
        if self == ANALYZE_DEFAULT:
            parts.append("= vigil analyze")
        return ", ".join(parts) or "no levers (the old pipeline)"


ALL = Levers(carry=2, skip=True, crops=True)
#: What `vigil analyze` gives the detector here by default: a core less than this machine
#: has, for the decode thread (vigil.detect.threads).
ANALYZE_THREADS = detector_threads(None, decode_thread=True)
ANALYZE_DEFAULT = Levers(
    carry=2, skip=True, crops=True, thread=True, ahead=None, ort_threads=ANALYZE_THREADS
)
LEVERS = {
    "old": Levers(),
    "carry": Levers(carry=2),
    "skip": Levers(skip=True),
    "crops": Levers(crops=True),
    "thread": Levers(thread=True),
    "all": ALL,
    "all+thread": Levers(carry=2, skip=True, crops=True, thread=True),
    "all+thread+ahead": Levers(carry=2, skip=True, crops=True, thread=True, ahead=True),
    # The `vigil analyze` default (the same row as the one above where it comes to 2), and
    # the default before the gate's work moved into the decode thread.
    "all+thread, analyze default": ANALYZE_DEFAULT,
    "analyze default, gate in the analysis thread": dataclasses.replace(
        ANALYZE_DEFAULT, ahead=False
    ),
}
if ANALYZE_THREADS == THREADS:
    del LEVERS["all+thread, analyze default"]


@contextlib.contextmanager
def full_frame_crops(off: bool) -> Iterator[None]:
    """With ``off``, regions are cut from the full frame's BGR as before ``Frame.bgr_region``."""
    if not off:
        yield
        return
    original = Frame.bgr_region

    def sliced(self: Frame, region: tuple[int, int, int, int]) -> ImageArray:
        x1, y1, x2, y2 = region
        return np.ascontiguousarray(self.bgr()[y1:y2, x1:x2])

    Frame.bgr_region = sliced  # type: ignore[method-assign]
    try:
        yield
    finally:
        Frame.bgr_region = original  # type: ignore[method-assign]


@dataclass
class Row:
    name: str
    frames: int
    seconds: float
    crossings: tuple[int, int] | None = None
    note: str = ""
    visits: int | None = None  # entries into the table zone (vigil only)
    cpu: float = 0.0  # CPU seconds of this process (all its threads): less load-sensitive
    #: CPU seconds of the analysis thread alone: on a quiet machine with a core for the decode
    #: thread, the analysis thread is the critical path.
    main_cpu: float = 0.0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds


def upscale(src: Path, height: int, work: Path) -> Path:
    out = work / f"{src.stem}-{height}p.mp4"
    if not out.exists():
        subprocess.run(
            [
                "ffmpeg",
                "-loglevel",
                "error",
                "-y",
                "-i",
                str(src),
                "-vf",
                f"scale=-2:{height}",
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-crf",
                "23",
                "-an",
                str(out),
            ],
            check=True,
        )
    return out


def camera(clip: Path, fps: float, carry: int = 0) -> ResolvedCamera:
    cam = parse_config(RULES).for_source(str(clip))
    return cam.model_copy(update={
        "detect": cam.detect.model_copy(update={"fps": fps}),
        "motion": cam.motion.model_copy(update={"carry_frames": carry}),
    })  # fmt: skip


def detector(cam: ResolvedCamera, threads: int = THREADS) -> OnnxDetector:
    return OnnxDetector(
        shared_models_dir() / "yolox_nano.onnx",
        confidence=cam.detect.confidence,
        nms_iou=cam.detect.nms_iou,
        threads=threads,
        labels=cam.detect.labels,
    )


def run_vigil(
    clip: Path, fps: float, limit: float | None, levers: Levers = ALL
) -> tuple[Row, float]:
    cam = camera(clip, fps, levers.carry)
    det = detector(cam, levers.ort_threads)
    with tempfile.TemporaryDirectory() as tmp, full_frame_crops(not levers.crops):
        options = AnalyzeOptions(Path(tmp), max_seconds=limit, skip_decode=levers.skip,
                                 decode_thread=levers.thread, gate_ahead=levers.ahead)  # fmt: skip
        start, cpu, main = time.perf_counter(), time.process_time(), time.thread_time()
        summary = analyze(str(clip), cam, det, options)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        main = time.thread_time() - main
    total = summary.counts["lines"]["exit"]["total"]
    frames_per_image = summary.frames / max(1, summary.images_inferred)
    row = Row(
        f"vigil {fps:g} fps, {levers.label()}",
        summary.frames,
        seconds,
        (total["a_to_b"], total["b_to_a"]),
        f"{summary.analysed} analysed, {summary.images_inferred} inferred, "
        f"{summary.stationary_skips} still + {summary.moving_carries} moving carried",
        summary.counts["zones"]["table"]["entries"]["total"],
        cpu,
        main,
    )
    return row, frames_per_image


def median_row(rows: list[Row]) -> Row:
    """The run of median frames/s (runs of one lever are interleaved with the others')."""
    by_fps = sorted(rows, key=lambda r: r.fps)
    middle = by_fps[len(by_fps) // 2]
    if len(rows) > 1:
        middle.note += f"; median of {len(rows)} ({', '.join(f'{r.fps:.0f}' for r in rows)})"
    return middle


def run_naive(clip: Path, limit: float | None) -> Row:
    import cv2
    import supervision as sv
    import trackers

    cam = camera(clip, 1000.0)
    det = detector(cam)
    cap = cv2.VideoCapture(str(clip))
    fps_src = cap.get(cv2.CAP_PROP_FPS) or 10.0
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    (ax, ay), (bx, by) = cam.lines["exit"].points
    line = sv.LineZone(
        start=sv.Point(ax * w, ay * h),
        end=sv.Point(bx * w, by * h),
        triggering_anchors=[sv.Position.BOTTOM_CENTER],
    )
    tracker = trackers.ByteTrackTracker()
    frames, start, cpu = 0, time.perf_counter(), time.process_time()
    while True:
        ok, image = cap.read()
        if not ok or (limit is not None and frames / fps_src > limit):
            break
        d = det.detect_batch([image])[0]
        tracked = tracker.update(
            sv.Detections(
                xyxy=d.xyxy.astype(np.float64),
                confidence=d.confidence.astype(np.float64),
                class_id=d.class_id.astype(int),
            )
        )
        tracked = tracked[tracked.tracker_id >= 0]
        line.trigger(tracked)
        frames += 1
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    cap.release()
    # LineZone's "in" is crossing from its right side to its left side, seen from start to end
    # (supervision's convention), which is Vigil's B→A; "out" is A→B.
    return Row(
        "naive (OpenCV+YOLOX+ByteTrack+LineZone)",
        frames,
        seconds,
        (line.out_count, line.in_count),
        "every frame",
        cpu=cpu,
    )


def stage_decode(clip: Path, limit: float | None) -> Row:
    source = open_source(str(clip))
    source.open()
    frames, start = 0, time.perf_counter()
    for frame in source.frames():
        if limit is not None and frame.pts > limit:
            break
        frames += frame.luma.size > 0  # built on first use: the stage's own work
    seconds = time.perf_counter() - start
    source.close()
    return Row("stage: decode only (luma)", frames, seconds)


def stage_detector(clip: Path, n: int = 150) -> Row:
    cam = camera(clip, 5.0)
    det = detector(cam)
    source = open_source(str(clip))
    info = source.open()
    scale = 416 / max(info.width, info.height)
    size = (round(info.width * scale), round(info.height * scale))
    images = []
    for frame in source.frames():
        images.append(frame.bgr(size))
        if len(images) == n:
            break
    source.close()
    det.detect_batch(images[:2])  # warm-up
    start = time.perf_counter()
    for image in images:
        det.detect_batch([image])
    return Row("stage: detector only (full frame)", len(images), time.perf_counter() - start)


def timed(label: str, fn: Callable[[], T]) -> T:
    print(f"  running {label} …", flush=True)
    return fn()


def bench_clip(clip: Path, limit: float | None, repeat: int) -> list[Row]:
    print(f"\n{clip.name}")
    decode = timed("decode", lambda: stage_decode(clip, limit))
    infer = timed("detector", lambda: stage_detector(clip))
    naive = timed("naive", lambda: run_naive(clip, limit))
    runs: dict[str, list[tuple[Row, float]]] = {name: [] for name in LEVERS}
    for i in range(repeat):  # ABAB…: every lever once per round, so load drifts hit all
        for name, lv in LEVERS.items():
            runs[name].append(
                timed(
                    f"{name} ({i + 1}/{repeat})", functools.partial(run_vigil, clip, 5.0, limit, lv)
                )
            )
    levered = []
    for results in runs.values():
        row = median_row([r for r, _ in results])
        levered.append((row, next(f for r, f in results if r is row)))
    vigil_full, ratio_full = timed("every frame", lambda: run_vigil(clip, 1000.0, limit))
    vigil_full.name = "vigil every frame, " + ALL.label()
    rows = [decode, infer, naive, *(r for r, _ in levered), vigil_full]
    print(f"{'pipeline':56} {'frames':>6} {'frames/s':>8} {'x naive':>7} {'cpu s':>6} "
          f"{'main s':>6} {'A→B,B→A':>8} {'table':>5}  note")  # fmt: skip
    for r in rows:
        counts = f"{r.crossings[0]},{r.crossings[1]}" if r.crossings else ""
        ratio = f"{r.fps / naive.fps:.2f}" if r.crossings else ""
        visits = "" if r.visits is None else str(r.visits)
        cpu = f"{r.cpu:.1f}" if r.cpu else ""
        main = f"{r.main_cpu:.1f}" if r.main_cpu else ""
        print(f"{r.name:56} {r.frames:6d} {r.fps:8.1f} {ratio:>7} {cpu:>6} {main:>6} "
              f"{counts:>8} {visits:>5}  {r.note}")  # fmt: skip
    for row, frames_per_image in (*levered, (vigil_full, ratio_full)):
        # Slowest stage alone (stages perfectly overlapped), and the sum of the stages (one
        # after the other: on 2 cores the detector's two threads leave nothing to overlap).
        slowest = min(decode.fps, infer.fps * frames_per_image)
        summed = 1.0 / (1.0 / decode.fps + 1.0 / (infer.fps * frames_per_image))
        print(
            f"{row.name}: x{row.fps / naive.fps:.2f} the naive pipeline "
            f"(counts {'equal' if row.crossings == naive.crossings else 'DIFFERENT'}), "
            f"{row.fps / slowest:.0%} of its slowest stage ({slowest:.0f} frames/s), "
            f"{row.fps / summed:.0%} of decode+detect in sequence ({summed:.0f} frames/s)"
        )
    return rows


def plot(results: dict[str, list[Row]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(7.5 * len(results), 4), squeeze=False)
    for ax, (name, rows) in zip(axes[0], results.items(), strict=True):
        ax.barh([r.name for r in rows], [r.fps for r in rows], color="#4477aa")
        ax.set_xlabel("frames/s (higher is better)")
        ax.set_title(name)
        ax.invert_yaxis()
    fig.tight_layout()
    RESULTS.mkdir(exist_ok=True)
    fig.savefig(RESULTS / "pipeline.png", dpi=100)
    print(f"\nchart: {RESULTS / 'pipeline.png'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="first 40 s of each clip only")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each lever, interleaved; the median is shown"
    )
    args = parser.parse_args()
    limit = 40.0 if args.quick else None
    clip = shared_data_dir() / "clips" / "one-by-one-person-detection.mp4"
    results = {clip.name: bench_clip(clip, limit, args.repeat)}
    if shutil.which("ffmpeg"):
        RESULTS.mkdir(exist_ok=True)
        big = upscale(clip, 1080, RESULTS)
        results[big.name] = bench_clip(big, limit, args.repeat)
    else:
        print("ffmpeg not found: skipping the 1080p copy")
    plot(results)


if __name__ == "__main__":
    main()
