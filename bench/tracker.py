"""Vigil's tracker against the ``trackers`` package (SORT, ByteTrack, OC-SORT at defaults).

Data: MOT15 TUD-Campus and TUD-Stadtmitte with their public detections (``det/det.txt``,
25 fps), scored with py-motmetrics (CLEAR MOT at IoU 0.5, IDF1). The evaluation is checked
first against the published score of each sequence's ``reference-result.txt``. Vigil runs with
``MOT_PUBLIC_DETECTIONS`` (the same settings for both sequences).

Run: ``python bench/tracker.py`` — prints one table per sequence plus ratios against the best
baseline, and writes ``bench/results/tracker.png``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _motmetrics_compat import import_motmetrics

from vigil.paths import shared_data_dir
from vigil.track import MOT_PUBLIC_DETECTIONS, ByteTracker, read_mot_detections
from vigil.types import Detections

mm = import_motmetrics()
FPS = 25.0
SEQUENCES = ("TUD-Campus", "TUD-Stadtmitte")
PUBLISHED_REFERENCE_MOTA = {"TUD-Campus": 0.526, "TUD-Stadtmitte": 0.564}
Rows = npt.NDArray[np.float64]
#: A runner tracks per-frame detections and returns MOT rows (frame, id, x, y, w, h).
Runner = Callable[[list[Detections]], Rows]


def _rows(rows: list[list[float]]) -> Rows:
    return np.asarray(rows, dtype=np.float64).reshape(-1, 6)


def run_vigil(frames: list[Detections]) -> Rows:
    tracker = ByteTracker(MOT_PUBLIC_DETECTIONS, frame_rate=FPS)
    out: list[list[float]] = []
    for i, dets in enumerate(frames):
        tracked = tracker.update(dets, i / FPS)
        for (x1, y1, x2, y2), tid in zip(tracked.xyxy.tolist(), tracked.tracker_id, strict=True):
            out.append([i + 1, int(tid), x1, y1, x2 - x1, y2 - y1])
    return _rows(out)


def baseline(name: str) -> Runner:
    import supervision as sv
    import trackers

    def run(frames: list[Detections]) -> Rows:
        tracker = getattr(trackers, name)()
        out: list[list[float]] = []
        for i, dets in enumerate(frames):
            sd = sv.Detections(
                xyxy=dets.xyxy.astype(np.float64),
                confidence=dets.confidence.astype(np.float64),
                class_id=dets.class_id.astype(int),
            )
            tracked = tracker.update(sd)
            for (x1, y1, x2, y2), tid in zip(
                tracked.xyxy.tolist(), tracked.tracker_id, strict=True
            ):
                if tid >= 0:  # trackers returns unconfirmed boxes with id -1
                    out.append([i + 1, int(tid), x1, y1, x2 - x1, y2 - y1])
        return _rows(out)

    return run


def evaluate(gt: Rows, hyp: Rows) -> dict[str, float]:
    acc = mm.MOTAccumulator(auto_id=True)
    for frame in range(1, int(gt[:, 0].max()) + 1):
        g, h = gt[gt[:, 0] == frame], hyp[hyp[:, 0] == frame]
        dist = mm.distances.iou_matrix(g[:, 2:6], h[:, 2:6], max_iou=0.5)
        acc.update(g[:, 1].astype(int).tolist(), h[:, 1].astype(int).tolist(), dist)
    summary = mm.metrics.create().compute(acc, metrics=["mota", "idf1", "num_switches"], name="seq")
    return {k: float(v) for k, v in summary.iloc[0].items()}


def timed(runner: Runner, frames: list[Detections], repeats: int = 3) -> tuple[Rows, float]:
    """Result of one run and the best frames/s of ``repeats`` runs (tracking only)."""
    best = float("inf")
    rows = _rows([])
    for _ in range(repeats):
        start = time.perf_counter()
        rows = runner(frames)
        best = min(best, time.perf_counter() - start)
    return rows, len(frames) / best


def bench_sequence(seq_dir: Path) -> dict[str, dict[str, float]]:
    gt = np.loadtxt(seq_dir / "gt" / "gt.txt", delimiter=",")[:, :6]
    ref = np.loadtxt(seq_dir / "reference-result.txt", delimiter=",")[:, :6]
    ref_mota = evaluate(gt, ref)["mota"]
    expected = PUBLISHED_REFERENCE_MOTA[seq_dir.name]
    if abs(ref_mota - expected) > 0.005:
        raise SystemExit(
            f"{seq_dir.name}: evaluation gives reference MOTA {ref_mota:.3f}, "
            f"published {expected:.3f}: the evaluator is not trustworthy"
        )
    frames = read_mot_detections(seq_dir / "det" / "det.txt")
    runners: dict[str, Runner] = {
        "SORT": baseline("SORTTracker"),
        "ByteTrack": baseline("ByteTrackTracker"),
        "OC-SORT": baseline("OCSORTTracker"),
        "Vigil": run_vigil,
    }
    results: dict[str, dict[str, float]] = {}
    for name, runner in runners.items():
        rows, fps = timed(runner, frames)
        results[name] = {**evaluate(gt, rows), "fps": fps}
    print(
        f"\n{seq_dir.name} ({len(frames)} frames; reference-result MOTA {ref_mota:.1%}, "
        f"published {expected:.1%})"
    )
    print(f"{'tracker':<10} {'MOTA %':>7} {'IDF1 %':>7} {'IDsw':>5} {'frames/s':>9}")
    for name, r in results.items():
        print(
            f"{name:<10} {100 * r['mota']:7.1f} {100 * r['idf1']:7.1f} "
            f"{int(r['num_switches']):5d} {r['fps']:9.0f}"
        )
    base = {
        m: max(results[b][m] for b in ("SORT", "ByteTrack", "OC-SORT"))
        for m in ("mota", "idf1", "fps")
    }
    v = results["Vigil"]
    print(
        f"Vigil / best baseline: MOTA x{v['mota'] / base['mota']:.3f}, "
        f"IDF1 x{v['idf1'] / base['idf1']:.3f}, frames/s x{v['fps'] / base['fps']:.2f}"
    )
    return results


def plot(all_results: dict[str, dict[str, dict[str, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(all_results), figsize=(6 * len(all_results), 4))
    for ax, (seq, results) in zip(np.atleast_1d(axes), all_results.items(), strict=True):
        names = list(results)
        x = np.arange(len(names))
        for offset, metric in ((-0.2, "mota"), (0.2, "idf1")):
            ax.bar(x + offset, [100 * results[n][metric] for n in names], 0.4, label=metric.upper())
        ax.set_xticks(x, names)
        ax.set_ylim(0, 100)
        ax.set_ylabel("%")
        ax.set_title(seq)
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    print(f"\nchart: {path}")


def main() -> int:
    root = shared_data_dir() / "mot15"
    if not root.exists():
        print(f"{root} is missing: set VIGIL_SHARED_DIR to the shared folder", file=sys.stderr)
        return 1
    all_results = {seq: bench_sequence(root / seq) for seq in SEQUENCES}
    plot(all_results, Path(__file__).resolve().parent / "results" / "tracker.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
