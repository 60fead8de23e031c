"""Capacity: how many cameras ``vigil serve``'s ``Supervisor`` sustains in real time.

Set up the way real installations are: each camera publishes a main stream (1920x1080 H.264,
15 fps, GOP 1 s, no B-frames), recorded continuously by stream copy and never decoded, and a
sub-stream (640x360, 5 fps, GOP 1 s), decoded and analysed at 5 fps with YOLOX-Nano (motion
gate on, as by default). Both are re-encoded ONCE from the shared clip
``one-by-one-person-detection.mp4`` into ``bench/results/capacity_cache/`` and published in
real time through one RTSP relay (``rtsp-server-perl``) by two ``ffmpeg -re -stream_loop -1
-c copy`` publishers per camera, over RTP/UDP.

For each N in ``--cameras`` and each mode in ``--processes`` (0: every camera in a thread of
one process; n: ``server.worker_processes = n``) the Supervisor runs in a CHILD process (so
its CPU and memory are its own, not the publishers' or the relay's) with cross-camera
batching (``detector.max_batch`` = ``--batch``), and at the N in ``--unbatched-at`` also
without (``max_batch = 1``). After ``--warmup`` seconds it measures for ``--window`` seconds:

- analysed frames/s per camera (target 5), frames dropped as too late
  (``CameraWorker.skipped_frames``), detector images/s (``BatchingDetector.stats``);
- recorded seconds (segments in the SQLite store overlapping the window) / wall seconds;
- CPU (user + system, all threads) of the child and its worker processes, as % of the
  machine's cores and per camera; memory: RSS summed over those processes (counts shared
  libraries once per process) and PSS (shared pages split between them), total and per camera;
- latency from frame capture (``Frame.wall_time``, stamped when the frame is decoded) to the
  end of its processing, when its detections, tracks, rule hits and events have been handed
  to the sinks; p50/p95 over every analysed frame, and over frames that emitted an event.
  Read from ``CameraWorker.latencies`` (reported by worker processes in their status), the
  same record in both modes.

A camera keeps up when its analysed fps >= 95 % of 5 and it dropped no frame. A mode leaves
the sweep at the first N where its batched run does not keep up. The publishers' and relay's
CPU is reported separately (it is not Vigil's), and the load average next to each row (the
machine may be shared). Prints a table and writes ``bench/results/capacity.png`` and
``capacity.json``. The default sweep takes about 6 to 8 minutes:

    python bench/capacity.py [--cameras 8,12,16,20,24] [--processes 0,2] [--unbatched-at 16]
                             [--warmup 8] [--window 15] [--detect-threads 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vigil.config.models import DetectConfig
from vigil.paths import shared_data_dir, shared_models_dir

RESULTS = Path(__file__).resolve().parent / "results"
CACHE = RESULTS / "capacity_cache"
CLIP = "one-by-one-person-detection.mp4"
TARGET_FPS = 5.0
KEEP_UP = 0.95
SEGMENT_S = 5.0
CORES = os.cpu_count() or 1
TICKS = os.sysconf("SC_CLK_TCK")

# name -> (scale, fps, GOP frames, extra x264 options)
STREAMS: dict[str, tuple[str, int, int, list[str]]] = {
    "main": ("1920:1080", 15, 15, ["-maxrate", "4M", "-bufsize", "8M", "-crf", "23"]),
    "sub": ("640:360", 5, 5, ["-maxrate", "512k", "-bufsize", "1M", "-crf", "25"]),
}


# -- footage ----------------------------------------------------------------------------------


def encode_streams() -> dict[str, Path]:
    """The main and sub stream files, encoded once from the shared clip (cached)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    clip = shared_data_dir() / "clips" / CLIP
    if not clip.is_file():
        sys.exit(f"missing {clip}: set VIGIL_DATA_DIR to the shared data folder")
    out: dict[str, Path] = {}
    for name, (scale, fps, gop, extra) in STREAMS.items():
        path = CACHE / f"{name}.mp4"
        if not path.is_file():
            print(f"encoding {path.name} ({scale} @ {fps} fps) ...", flush=True)
            tmp = path.with_suffix(".part.mp4")
            subprocess.run(
                ["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-i", str(clip),
                 "-vf", f"scale={scale},fps={fps}", "-c:v", "libx264", "-preset", "veryfast",
                 "-pix_fmt", "yuv420p", "-bf", "0", "-g", str(gop), "-keyint_min", str(gop),
                 "-sc_threshold", "0", *extra, "-an", str(tmp)],
                check=True,
            )  # fmt: skip
            tmp.rename(path)
        out[name] = path
    return out


# -- the RTSP side ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14, 15)


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    proc.send_signal(sig)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Relay:
    """One rtsp-server-perl relay and the publishers of as many cameras as asked for."""

    def __init__(self, streams: dict[str, Path]) -> None:
        self.streams = streams
        self.client_port, self.source_port = free_port(), free_port()
        rtp_start = 2 * random.randrange(15000, 30000)  # not the default 20000: avoid clashes
        self.server = subprocess.Popen(
            ["rtsp-server-perl", "-c", str(self.client_port), "-s", str(self.source_port),
             "--rtp_start_port", str(rtp_start)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.publishers: list[subprocess.Popen[bytes]] = []
        wait_port(self.client_port)
        wait_port(self.source_port)

    def url(self, camera: int, stream: str) -> str:
        return f"rtsp://127.0.0.1:{self.client_port}/cam{camera}_{stream}"

    @property
    def cameras(self) -> int:
        return len(self.publishers) // len(self.streams)

    def grow(self, cameras: int) -> None:
        """Publish cameras until ``cameras`` are live; waits for the new ones to announce."""
        if cameras <= self.cameras:
            return
        for cam in range(self.cameras, cameras):
            for name, path in self.streams.items():
                self.publishers.append(subprocess.Popen(
                    ["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1",
                     "-i", str(path), "-c", "copy", "-f", "rtsp",
                     f"rtsp://127.0.0.1:{self.source_port}/cam{cam}_{name}"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                ))  # fmt: skip
        time.sleep(2.0)

    def pids(self) -> list[int]:
        return [self.server.pid, *(p.pid for p in self.publishers)]

    def close(self) -> None:
        # SIGINT: ffmpeg sends TEARDOWN, without which the relay keeps the mount forbidden.
        for proc in self.publishers:
            proc.send_signal(signal.SIGINT)
        for proc in self.publishers:
            stop_process(proc, signal.SIGINT)
        stop_process(self.server)


# -- the child: one Supervisor run --------------------------------------------------------------


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def process_rss(pid: int) -> int:
    """Resident bytes of ``pid`` (0 once it is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def process_pss(pid: int) -> int:
    """Proportional set size of ``pid`` in bytes: shared pages (libraries, the model) split
    between the processes that map them, so worker processes are not counted twice."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return 0


def window_frames(worker: Any, t0: float, t1: float) -> tuple[int, list[float], list[float]]:
    """Analysed frames finished in ``[t0, t1]``, their latencies, those that emitted events
    (from ``worker.latencies``: the same record in thread and process mode)."""
    rows = [(lat, ev) for when, lat, ev in list(worker.latencies) if t0 <= when <= t1]
    return len(rows), [lat for lat, _ in rows], [lat for lat, ev in rows if ev]


class ErrorCounter(logging.Handler):
    """Counts warnings and errors by logger (the table reports them; printing thousands of
    tracebacks would cost the CPU being measured)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: dict[str, int] = {}
        self.first: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        key = f"{record.levelname} {record.name}"
        self.counts[key] = self.counts.get(key, 0) + 1
        if key not in self.first:
            self.first[key] = record.getMessage()[:300]
            print(f"[child] first {key}: {self.first[key]}", file=sys.stderr, flush=True)


def child(spec_path: Path, out_path: Path) -> None:
    """Run a Supervisor with ``spec``'s cameras; write the measurements as JSON."""
    from vigil.config.models import VigilConfig
    from vigil.runtime.serve import Supervisor
    from vigil.store import Database, SegmentRepo

    spec = json.loads(spec_path.read_text())
    errors = ErrorCounter()
    logging.basicConfig(level=logging.WARNING, handlers=[errors])
    data = Path(spec["data_dir"])
    options = {"rtsp_transport": "udp"}
    config = VigilConfig.model_validate({
        "detect": {"model": spec["model"], "fps": TARGET_FPS, "labels": ["person"],
                   "threads": spec["detect_threads"]},
        "detector": {"max_batch": spec["max_batch"]},
        "server": {"worker_processes": spec["processes"]},
        "events": {"min_duration": 0.5},
        "data_dir": str(data),
        "record": {"mode": "continuous", "segment_seconds": SEGMENT_S},
        "cameras": {
            f"cam{i}": {"sources": [
                {"url": urls["main"], "roles": ["record"], "options": options},
                {"url": urls["sub"], "roles": ["detect"], "options": options},
            ]} for i, urls in enumerate(spec["urls"])
        },
    })  # fmt: skip
    db = Database(f"sqlite:///{data / 'vigil.db'}")
    db.migrate()
    rss_idle = rss_bytes()
    supervisor = Supervisor(config, db=db, stall_timeout=5.0)
    supervisor.start()
    # The relay sends a new client a burst of the stream's past seconds (faster than real
    # time): warm up from the moment every camera delivers frames, not from the start.
    deadline = time.monotonic() + 60.0
    while any(w.frames == 0 for w in supervisor.workers.values()):
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    time.sleep(spec["warmup"])

    pids = supervisor.worker_pids()
    skipped0 = {n: w.skipped_frames for n, w in supervisor.workers.items()}
    batch0 = supervisor.batcher.stats if supervisor.batcher else None
    cpu0, t0 = os.times(), time.time()
    kids0 = sum(cpu_seconds(p) for p in pids)
    time.sleep(spec["window"])
    cpu1, t1 = os.times(), time.time()
    kids1 = sum(cpu_seconds(p) for p in pids)
    time.sleep(1.0)  # the last status reports of worker processes (every 0.1 s)
    batch1 = supervisor.batcher.stats if supervisor.batcher else None
    online = {n: w.online for n, w in supervisor.workers.items()}
    rss = rss_bytes() + sum(process_rss(p) for p in pids)
    pss = sum(process_pss(p) for p in [os.getpid(), *pids])
    skipped = {n: w.skipped_frames - skipped0[n] for n, w in supervisor.workers.items()}
    frames = {n: window_frames(w, t0, t1) for n, w in supervisor.workers.items()}
    supervisor.stop()

    wall = t1 - t0
    with db.session() as session:
        recorded = {
            name: sum(max(0.0, min(r.end, t1) - max(r.start, t0))
                      for r in SegmentRepo(session).list(name, t0, t1))
            for name in supervisor.workers
        }  # fmt: skip
    db.close()
    cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system) + (kids1 - kids0)
    images = (batch1.images - batch0.images) if batch0 and batch1 else 0
    batches = (batch1.batches - batch0.batches) if batch0 and batch1 else 0
    result = {
        "wall": wall, "cpu_s": cpu, "rss": rss, "pss": pss, "rss_idle": rss_idle,
        "fps": {n: f[0] / wall for n, f in frames.items()}, "processes": len(pids),
        "online": online, "errors": errors.counts,
        "skipped": skipped,
        "recorded": {n: v / wall for n, v in recorded.items()},
        "latencies": [x for f in frames.values() for x in f[1]],
        "event_latencies": [x for f in frames.values() for x in f[2]],
        "detector_images_per_s": images / wall, "batches": batches,
        "mean_batch": images / batches if batches else 0.0,
    }  # fmt: skip
    out_path.write_text(json.dumps(result))


# -- the parent: sweep N --------------------------------------------------------------------


@dataclass
class Row:
    cameras: int
    processes: int  # worker processes (0: every camera in a thread of one process)
    max_batch: int
    cpu_pct: float  # of all cores
    cpu_per_cam: float  # % of one core
    rss_mb: float
    rss_per_cam_mb: float
    pss_per_cam_mb: float  # proportional set size: shared pages split between processes
    min_fps: float
    mean_fps: float
    dropped: int
    recorded: float  # min over cameras, recorded s / wall s
    p50_ms: float
    p95_ms: float
    event_p95_ms: float
    det_img_s: float
    mean_batch: float
    feeders_cpu_pct: float  # relay + publishers, of all cores
    errors: int  # log records at ERROR or above in the child
    keeps_up: bool


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


def run_once(
    relay: Relay, cameras: int, processes: int, max_batch: int, args: argparse.Namespace
) -> Row:
    """One child run with ``cameras`` cameras; the relay already publishes them."""
    with tempfile.TemporaryDirectory(prefix="vigil-capacity-") as tmp:
        folder = Path(tmp)
        spec = {
            "model": str(args.model), "max_batch": max_batch, "processes": processes,
            "detect_threads": args.detect_threads,
            "data_dir": str(folder / "data"),
            "warmup": args.warmup, "window": args.window,
            "urls": [{s: relay.url(i, s) for s in STREAMS} for i in range(cameras)],
        }  # fmt: skip
        (folder / "spec.json").write_text(json.dumps(spec))
        feeders0 = sum(cpu_seconds(p) for p in relay.pids())
        started = time.time()
        proc = subprocess.run(
            [sys.executable, __file__, "--child", str(folder / "spec.json"),
             str(folder / "out.json")],
            check=False, timeout=args.warmup + args.window + 180,
        )  # fmt: skip
        feeders = sum(cpu_seconds(p) for p in relay.pids()) - feeders0
        elapsed = time.time() - started
        if proc.returncode not in (0, -6):  # -6: a C++ thread aborted at exit, after the JSON
            sys.exit(f"the Supervisor child failed with status {proc.returncode}")
        out = folder / "out.json"
        if not out.is_file():
            sys.exit(f"the Supervisor child failed with status {proc.returncode}")
        r = json.loads(out.read_text())
    fps = list(r["fps"].values())
    dropped = sum(r["skipped"].values())
    lat = r["latencies"]
    cpu_pct = 100.0 * r["cpu_s"] / r["wall"] / CORES
    return Row(
        cameras=cameras, processes=processes, max_batch=max_batch, cpu_pct=cpu_pct,
        cpu_per_cam=cpu_pct * CORES / cameras, rss_mb=r["rss"] / 2**20,
        rss_per_cam_mb=r["rss"] / 2**20 / cameras, pss_per_cam_mb=r["pss"] / 2**20 / cameras,
        min_fps=min(fps),
        mean_fps=statistics.fmean(fps), dropped=dropped, recorded=min(r["recorded"].values()),
        p50_ms=1000 * percentile(lat, 50), p95_ms=1000 * percentile(lat, 95),
        event_p95_ms=1000 * percentile(r["event_latencies"], 95),
        det_img_s=r["detector_images_per_s"], mean_batch=r["mean_batch"],
        feeders_cpu_pct=100.0 * feeders / elapsed / CORES,
        errors=sum(v for k, v in r["errors"].items() if not k.startswith("WARNING")),
        keeps_up=min(fps) >= KEEP_UP * TARGET_FPS and dropped == 0 and all(r["online"].values()),
    )  # fmt: skip


HEADER = (
    f"{'N':>3} {'procs':>5} {'batch':>5} {'CPU%':>6} {'%core/cam':>9} {'RSS MB':>7} {'MB/cam':>7} "
    f"{'PSS/cam':>7} "
    f"{'fps min':>7} {'fps avg':>7} {'drop':>5} {'rec':>5} {'p50 ms':>7} {'p95 ms':>7} "
    f"{'ev p95':>7} {'det/s':>6} {'b̄':>4} {'feed%':>6} {'err':>4} ok"
)


def fmt(row: Row) -> str:
    return (
        f"{row.cameras:>3} {row.processes:>5} {row.max_batch:>5} {row.cpu_pct:>6.1f} "
        f"{row.cpu_per_cam:>9.1f} "
        f"{row.rss_mb:>7.0f} {row.rss_per_cam_mb:>7.1f} {row.pss_per_cam_mb:>7.1f} "
        f"{row.min_fps:>7.2f} "
        f"{row.mean_fps:>7.2f} {row.dropped:>5} {row.recorded:>5.2f} {row.p50_ms:>7.0f} "
        f"{row.p95_ms:>7.0f} {row.event_p95_ms:>7.0f} {row.det_img_s:>6.1f} "
        f"{row.mean_batch:>4.1f} {row.feeders_cpu_pct:>6.1f} {row.errors:>4} "
        f"{'yes' if row.keeps_up else 'NO'}"
    )


def label(processes: int, batch: int) -> str:
    mode = f"{processes} worker processes" if processes else "threads"
    return f"{mode}, max_batch={batch}" + (" (no batching)" if batch == 1 else "")


def plot(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for key in sorted({(r.processes, r.max_batch) for r in rows}):
        mine = [r for r in rows if (r.processes, r.max_batch) == key]
        xs = [r.cameras for r in mine]
        style = "o-" if len(mine) > 1 else "s"
        left.plot(xs, [r.cpu_pct for r in mine], style, label=label(*key))
        right.plot(xs, [r.min_fps for r in mine], style, label=label(*key))
    left.set(xlabel="cameras", ylabel=f"Vigil CPU % of {CORES} cores", ylim=(0, 105))
    right.axhline(KEEP_UP * TARGET_FPS, color="grey", ls="--", label="95 % of 5 fps")
    right.set(xlabel="cameras", ylabel="analysed fps, slowest camera", ylim=(0, 6))
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("vigil serve capacity: 1080p15 recorded + 360p5 analysed per camera")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def verdict(rows: list[Row]) -> list[str]:
    lines: list[str] = []
    for processes in sorted({r.processes for r in rows}):
        mode = f"{processes} worker processes" if processes else "threads (one process)"
        batched = [r for r in rows if r.processes == processes and r.max_batch != 1]
        ok = [r for r in batched if r.keeps_up]
        best = max(ok, key=lambda r: r.cameras) if ok else None
        n = best.cameras if best else 0
        lines.append(f"{mode}: cameras sustained (batched): {n}   goal >= 16: "
                     f"{'met' if n >= 16 else 'NOT met'}")  # fmt: skip
        if best is not None:
            lines.append(
                f"  at N={n}: {best.cpu_per_cam:.1f} % of a core/camera, "
                f"{best.rss_per_cam_mb:.0f} MB/camera RSS, {best.pss_per_cam_mb:.0f} PSS "
                f"(goal < 150: "
                f"{'met' if best.rss_per_cam_mb < 150 else 'NOT met'}), p50/p95 latency "
                f"{best.p50_ms:.0f}/{best.p95_ms:.0f} ms (goal < 500: "
                f"{'met' if best.p95_ms < 500 else 'NOT met'})"
            )
            first = batched[0]
            if best.cameras > first.cameras:
                slope = (best.rss_mb - first.rss_mb) / (best.cameras - first.cameras)
                lines.append(f"  marginal memory per camera (N={first.cameras}..{n}): "
                             f"{slope:.1f} MB")  # fmt: skip
        for twin in [r for r in rows if r.processes == processes and r.max_batch == 1]:
            mate = [r for r in batched if r.cameras == twin.cameras]
            if mate:
                lines.append(
                    f"  at N={twin.cameras} without batching: CPU {twin.cpu_pct:.1f} % vs "
                    f"{mate[0].cpu_pct:.1f} % batched (ratio "
                    f"{twin.cpu_pct / mate[0].cpu_pct:.2f}), fps min {twin.min_fps:.2f}, "
                    f"p95 {twin.p95_ms:.0f} ms, keeps up: {'yes' if twin.keeps_up else 'NO'}"
                )
    return lines


def sweep(args: argparse.Namespace) -> None:
    for tool in ("ffmpeg", "rtsp-server-perl"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (Debian: apt-get install {tool})")
    if not args.model.is_file():
        sys.exit(f"missing model {args.model}")
    streams = encode_streams()
    relay = Relay(streams)
    rows: list[Row] = []
    print(f"{CORES} cores; warm-up {args.warmup} s, window {args.window} s per run; "
          f"load average {os.getloadavg()[0]:.2f} before the sweep")  # fmt: skip
    print(HEADER, flush=True)
    alive = list(args.processes)
    try:
        for n in args.cameras:
            if not alive:
                break
            relay.grow(n)
            for processes in list(alive):
                runs = [args.batch] + ([1] if n in args.unbatched_at else [])
                for batch in runs:
                    row = run_once(relay, n, processes, batch, args)
                    rows.append(row)
                    print(fmt(row), f"load {os.getloadavg()[0]:.1f}", flush=True)
                    if batch != 1 and not row.keeps_up:
                        alive.remove(processes)  # past this mode's capacity
                        break
    finally:
        relay.close()
    print()
    print("\n".join(verdict(rows)))
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(rows, RESULTS / "capacity.png")
    (RESULTS / "capacity.json").write_text(json.dumps([r.__dict__ for r in rows], indent=1))
    print(f"wrote {RESULTS / 'capacity.png'} and capacity.json")


def int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cameras", default="8,12,16,20,24", type=int_list)
    parser.add_argument(
        "--processes",
        default="0,2",
        type=int_list,
        help="modes to compare: 0 = threads, n = n worker processes",
    )
    parser.add_argument(
        "--unbatched-at",
        default="16",
        type=int_list,
        help="camera counts at which each mode also runs without batching",
    )
    parser.add_argument("--warmup", type=float, default=8.0)
    parser.add_argument("--window", type=float, default=15.0)
    parser.add_argument("--batch", type=int, default=8, help="max_batch of the batched run")
    default_threads = DetectConfig.model_validate({}).threads
    parser.add_argument("--detect-threads", type=int, default=default_threads,
                        help="detect.threads: ONNX Runtime intra-op threads of the shared model "
                        "(default: the configuration's)")  # fmt: skip
    parser.add_argument("--model", type=Path, default=shared_models_dir() / "yolox_nano.onnx")
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
    else:
        sweep(args)


if __name__ == "__main__":
    main()
