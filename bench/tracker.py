"""Vigil's tracker against the six trackers of the ``trackers`` package, on data split for tuning.

Peers, all at their defaults (``trackers`` 2.6.1; only ``frame_rate`` is passed, the input's
frame rate): SORT, ByteTrack, OC-SORT, BoT-SORT, C-BIoU and McByte. All run on detections
alone: BoT-SORT's and McByte's camera-motion compensation needs the frame and is skipped
without one (the package does so silently), McByte's mask manager is off by default, and no
tracker gets appearance features. Vigil runs with the ``TrackerConfig`` defaults — the same
parameters as the product — and the sequence's frame rate.

Data and split (fixed before tuning; see docs/tracking.md):

* **MOT17 train, simulated detections** (``bench/mot17_sim.py``: a seeded noise model of
  misses, jitter, false positives and overlapping scores, never tuned).
  Tuning: MOT17-02, -05, -09, -11 (two static and two moving cameras, 14 and 30 fps).
  Held out: MOT17-04, -10, -13 (static crowd; moving camera at night; moving camera at 25 fps).
* **MOT15 train, real public detections** (the Faster R-CNN boxes SORT's authors published).
  Tuning: ETH-Sunnyday, KITTI-13, KITTI-17 (looked for in ``$VIGIL_MOT15_DIR``, then in the
  shared folder, whose stock copy has only TUD; skipped with a note where absent).
  Held out: TUD-Campus and TUD-Stadtmitte, whose evaluation is first checked against the
  published score of each one's ``reference-result.txt``. Ground-truth rows
  flagged 0 (not scored by MOT15) are dropped.

Everything is scored with py-motmetrics (CLEAR MOT at IoU 0.5, IDF1).

Run: ``python bench/tracker.py`` — prints MOTA, IDF1 and ID-switch tables (per sequence, mean
of the tuning and of the held-out MOT17 sequences), whether Vigil beats the best peer on the
held-out data, and writes ``bench/results/tracker.png``. ``--sets tuning`` runs the tuning
sequences only (for tuning), ``--trackers Vigil`` Vigil only, ``--rate 5`` every sequence
subsampled to the product's 5 analysed frames/s.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _motmetrics_compat import import_motmetrics
from mot17_sim import load_sequence, simulate

from vigil.config.models import TrackerConfig
from vigil.paths import shared_data_dir
from vigil.track import ByteTracker, read_mot_detections
from vigil.types import Detections

mm = import_motmetrics()
TUNING = ("MOT17-02", "MOT17-05", "MOT17-09", "MOT17-11")
HELD_OUT_MOT17 = ("MOT17-04", "MOT17-10", "MOT17-13")
#: MOT15 train sequences with the public Faster R-CNN detections (SORT's): name → (frame
#: rate, role). TUD is held out; ETH-Sunnyday and the KITTI ones tune on real detector
#: noise. Those three are not in every shared folder: missing ones are skipped with a note.
MOT15 = {
    "ETH-Sunnyday": (14.0, "tuning"),
    "KITTI-13": (10.0, "tuning"),
    "KITTI-17": (10.0, "tuning"),
    "TUD-Campus": (25.0, "held-out"),
    "TUD-Stadtmitte": (25.0, "held-out"),
}
#: A folder with more MOT15 sequences (``<name>/{det,gt}``), searched before the shared one.
MOT15_ENV = "VIGIL_MOT15_DIR"
PUBLISHED_REFERENCE_MOTA = {"TUD-Campus": 0.526, "TUD-Stadtmitte": 0.564}
#: Display name → class in ``trackers``.
PEERS = {
    "SORT": "SORTTracker",
    "ByteTrack": "ByteTrackTracker",
    "OC-SORT": "OCSORTTracker",
    "BoT-SORT": "BoTSORTTracker",
    "C-BIoU": "CBIoUTracker",
    "McByte": "McByteTracker",
}
METRICS = ("mota", "idf1", "num_switches")
Rows = npt.NDArray[np.float64]
#: A runner tracks per-frame detections at a frame rate and returns MOT rows (frame, id, xywh).
Runner = Callable[[list[Detections], float], Rows]
Results = dict[str, dict[str, dict[str, float]]]  # sequence → tracker → metric → value


@dataclass(frozen=True, slots=True)
class Case:
    """One benchmark sequence: detections per frame, ground truth rows, frame rate, role."""

    name: str
    role: str  # "tuning" or "held-out"
    frames: list[Detections]
    gt: Rows
    fps: float


def _rows(rows: list[list[float]]) -> Rows:
    return np.asarray(rows, dtype=np.float64).reshape(-1, 6)


def vigil_runner(config: TrackerConfig | None = None) -> Runner:
    def run(frames: list[Detections], fps: float) -> Rows:
        tracker = ByteTracker(config, frame_rate=fps)
        out: list[list[float]] = []
        for i, dets in enumerate(frames):
            tracked = tracker.update(dets, i / fps)
            for (x1, y1, x2, y2), tid in zip(
                tracked.xyxy.tolist(), tracked.tracker_id, strict=True
            ):
                out.append([i + 1, int(tid), x1, y1, x2 - x1, y2 - y1])
        return _rows(out)

    return run


def peer_runner(class_name: str) -> Runner:
    import supervision as sv
    import trackers

    def run(frames: list[Detections], fps: float) -> Rows:
        tracker = getattr(trackers, class_name)(frame_rate=fps)
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


def _by_frame(rows: Rows, frames: int) -> list[Rows]:
    rows = rows[np.argsort(rows[:, 0], kind="stable")]
    bounds = np.searchsorted(rows[:, 0], np.arange(1, frames + 2))
    return [rows[a:b] for a, b in itertools.pairwise(bounds)]


def evaluate(gt: Rows, hyp: Rows) -> dict[str, float]:
    frames = int(max(gt[:, 0].max(), hyp[:, 0].max() if len(hyp) else 0))
    acc = mm.MOTAccumulator(auto_id=True)
    for g, h in zip(_by_frame(gt, frames), _by_frame(hyp, frames), strict=True):
        dist = mm.distances.iou_matrix(g[:, 2:6], h[:, 2:6], max_iou=0.5)
        acc.update(g[:, 1].astype(int).tolist(), h[:, 1].astype(int).tolist(), dist)
    summary = mm.metrics.create().compute(acc, metrics=list(METRICS), name="seq")
    return {k: float(v) for k, v in summary.iloc[0].items()}


def _frames_of(rows: Rows, length: int) -> list[Detections]:
    """Per-frame ``Detections`` from rows ``frame, x1, y1, x2, y2, score`` (person class)."""
    out = []
    for r in _by_frame(rows, length):
        out.append(
            Detections(
                r[:, 1:5].astype(np.float32),
                r[:, 5].astype(np.float32),
                np.zeros(len(r), np.int64),
            )
        )
    return out


def mot17_case(name: str, role: str, seed: int | None = None) -> Case:
    seq = load_sequence(shared_data_dir() / "mot17" / "train" / name)
    rows = simulate(seq) if seed is None else simulate(seq, seed)
    return Case(name, role, _frames_of(rows, seq.length), seq.gt, seq.fps)


def subsampled(case: Case, rate: float) -> Case:
    """``case`` at about ``rate`` frames/s: every k-th frame, ground truth renumbered."""
    k = max(1, round(case.fps / rate))
    keep = np.arange(0, len(case.frames), k)
    gt = case.gt[np.isin(case.gt[:, 0], keep + 1)].copy()
    gt[:, 0] = (gt[:, 0] - 1) // k + 1
    return Case(case.name, case.role, [case.frames[i] for i in keep], gt, case.fps / k)


def mot15_folders() -> list[Path]:
    """Where MOT15 sequences are looked for: ``$VIGIL_MOT15_DIR`` first, then the shared one.

    The stock shared folder has only TUD; the real-detection tuning sequences (ETH-Sunnyday,
    KITTI-13, KITTI-17) can be laid out elsewhere as ``<dir>/<name>/{det,gt}/``.
    """
    shared = shared_data_dir() / "mot15"
    extra = os.environ.get(MOT15_ENV)
    return [Path(extra), shared] if extra else [shared]


def mot15_case(name: str) -> Case | None:
    """A MOT15 sequence with its public detections; None (with a note) where it is missing.

    Ground-truth rows flagged 0 (people too small or hidden, which MOT15 does not score) are
    dropped, as MOTChallenge's evaluation does; TUD has none. Where a reference result with a
    published score exists, the evaluation must reproduce it first.
    """
    fps, role = MOT15[name]
    folders = mot15_folders()
    seq_dir = next((f / name for f in folders if (f / name / "gt" / "gt.txt").exists()), None)
    if seq_dir is None:
        where = " or ".join(str(f) for f in folders)
        print(f"{name}: not in {where} (set {MOT15_ENV}), skipped", file=sys.stderr)
        return None
    rows = np.loadtxt(seq_dir / "gt" / "gt.txt", delimiter=",", ndmin=2)
    gt = rows[rows[:, 6] != 0, :6]
    if name in PUBLISHED_REFERENCE_MOTA:
        ref = np.loadtxt(seq_dir / "reference-result.txt", delimiter=",")[:, :6]
        ref_mota = evaluate(gt, ref)["mota"]
        expected = PUBLISHED_REFERENCE_MOTA[name]
        if abs(ref_mota - expected) > 0.005:
            raise SystemExit(
                f"{name}: evaluation gives reference MOTA {ref_mota:.3f}, published "
                f"{expected:.3f}: the evaluator is not trustworthy"
            )
    return Case(name, role, read_mot_detections(seq_dir / "det" / "det.txt"), gt, fps)


def run_case(case: Case, runners: dict[str, Runner]) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    for name, runner in runners.items():
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # trackers warns about unused frames/timestamps
            rows = runner(case.frames, case.fps)
        elapsed = time.perf_counter() - start
        results[name] = {**evaluate(case.gt, rows), "fps": len(case.frames) / elapsed}
    return results


def _mean(results: Results, seqs: tuple[str, ...], tracker: str, metric: str) -> float:
    return float(np.mean([results[s][tracker][metric] for s in seqs]))


def print_tables(results: Results, roles: dict[str, str], trackers: list[str]) -> None:
    """Markdown tables: one per metric, rows = sequences (+ means), columns = trackers."""
    groups = {
        "mean tuning MOT17": tuple(s for s in results if s in TUNING),
        "mean tuning MOT15": tuple(s for s in results if s in MOT15 and MOT15[s][1] == "tuning"),
        "mean held-out MOT17": tuple(s for s in results if s in HELD_OUT_MOT17),
    }
    for metric, title, fmt in (
        ("mota", "MOTA %", "{:.1f}"),
        ("idf1", "IDF1 %", "{:.1f}"),
        ("num_switches", "ID switches", "{:.0f}"),
    ):
        scale = 1.0 if metric == "num_switches" else 100.0
        print(f"\n{title}\n")
        print("| sequence | set | " + " | ".join(trackers) + " |")
        print("|---|---|" + "---:|" * len(trackers))
        for seq in results:
            cells = [fmt.format(scale * results[seq][t][metric]) for t in trackers]
            print(f"| {seq} | {roles[seq]} | " + " | ".join(cells) + " |")
        for label, seqs in groups.items():
            if seqs:
                cells = [fmt.format(scale * _mean(results, seqs, t, metric)) for t in trackers]
                print(f"| **{label}** | | " + " | ".join(cells) + " |")


def verdict(results: Results, trackers: list[str]) -> bool:
    """Print and return whether Vigil beats the best peer on every held-out criterion."""
    peers = [t for t in trackers if t != "Vigil"]
    if "Vigil" not in trackers or not peers:
        return False
    checks: list[tuple[str, tuple[str, ...]]] = []
    held = tuple(s for s in HELD_OUT_MOT17 if s in results)
    if held:
        checks.append(("mean held-out MOT17", held))
    checks += [(s, (s,)) for s in MOT15 if s in results and MOT15[s][1] == "held-out"]
    ok = True
    print()
    for label, seqs in checks:
        for metric in ("mota", "idf1"):
            best = max(peers, key=lambda t: _mean(results, seqs, t, metric))
            v, b = _mean(results, seqs, "Vigil", metric), _mean(results, seqs, best, metric)
            win = v > b
            ok &= win
            print(
                f"{label:<20} {metric.upper():<5} Vigil {100 * v:5.1f}  best peer {best} "
                f"{100 * b:5.1f}  {'beats' if win else 'LOSES'}"
            )
    print("Vigil beats the best peer on all held-out criteria" if ok else "goal not met")
    return ok


def plot(results: Results, roles: dict[str, str], trackers: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seqs = list(results)
    fig, axes = plt.subplots(2, 1, figsize=(max(8, 1.6 * len(seqs)), 7), sharex=True)
    x = np.arange(len(seqs))
    width = 0.8 / len(trackers)
    for ax, metric in zip(axes, ("mota", "idf1"), strict=True):
        for k, t in enumerate(trackers):
            values = [100 * results[s][t][metric] for s in seqs]
            ax.bar(x + (k - (len(trackers) - 1) / 2) * width, values, width, label=t)
        ax.set_ylabel(f"{metric.upper()} %")
        ax.set_ylim(0, 100)
    axes[0].legend(ncol=len(trackers), fontsize="small")
    axes[1].set_xticks(x, [f"{s}\n({roles[s]})" for s in seqs], fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    print(f"\nchart: {path}")


def cases(sets: list[str], rate: float | None = None) -> list[Case]:
    """The benchmark sequences; with ``rate``, every one subsampled to about that rate."""
    out = []
    if "tuning" in sets:
        out += [mot17_case(s, "tuning") for s in TUNING]
    if "held-out" in sets:
        out += [mot17_case(s, "held-out") for s in HELD_OUT_MOT17]
    for name, (_, role) in MOT15.items():
        if role in sets and (case := mot15_case(name)) is not None:
            out.append(case)
    return out if rate is None else [subsampled(c, rate) for c in out]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sets", nargs="+", choices=["tuning", "held-out"], default=["tuning", "held-out"]
    )
    parser.add_argument(
        "--trackers", nargs="+", choices=["Vigil", *PEERS], default=["Vigil", *PEERS]
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="subsample every sequence to about this many frames/s (5 = the product's "
        "analysis rate)",
    )
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args(argv)
    if not (shared_data_dir() / "mot17").exists():
        print(f"{shared_data_dir()} lacks mot17/: set VIGIL_SHARED_DIR", file=sys.stderr)
        return 1
    trackers: list[str] = args.trackers
    runners: dict[str, Runner] = {
        t: vigil_runner() if t == "Vigil" else peer_runner(PEERS[t]) for t in trackers
    }
    results: Results = {}
    roles: dict[str, str] = {}
    for case in cases(args.sets, args.rate):
        results[case.name] = run_case(case, runners)
        roles[case.name] = case.role
        speeds = ", ".join(f"{t} {r['fps']:.0f}" for t, r in results[case.name].items())
        print(
            f"{case.name} ({case.role}, {len(case.frames)} frames at {case.fps:.1f} fps): "
            f"tracking frames/s {speeds}"
        )
    print_tables(results, roles, trackers)
    verdict(results, trackers)
    if not args.no_plot:
        name = "tracker.png" if args.rate is None else f"tracker-{args.rate:g}fps.png"
        plot(results, roles, trackers, Path(__file__).resolve().parent / "results" / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
