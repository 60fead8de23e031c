"""Capacity: how many cameras ``vigil serve``'s ``Supervisor`` sustains in real time.

Set up the way real installations are: each camera publishes a main stream (1920x1080 H.264,
15 fps, GOP 1 s, no B-frames), recorded continuously by stream copy and never decoded, and a
sub-stream (640x360, 5 fps, GOP 1 s), decoded and analysed at 5 fps with YOLOX-Nano (motion
gate on, as by default). Both are re-encoded ONCE from the shared clip
``one-by-one-person-detection.mp4`` into ``bench/results/capacity_cache/`` and published in
real time through one RTSP relay (``rtsp-server-perl``) by two ``ffmpeg -re -stream_loop -1
-c copy`` publishers per camera, over RTP/UDP.

For each N in ``--cameras`` the Supervisor runs in a CHILD process (so its CPU and RSS are
its own, not the publishers' or the relay's), once with cross-camera batching
(``detector.max_batch`` = ``--batch``) and once without (``max_batch = 1``). After
``--warmup`` seconds it measures for ``--window`` seconds:

- analysed frames/s per camera (frames the sampler took; target 5), frames dropped as too
  late (``CameraWorker.skipped_frames``), detector images/s (``BatchingDetector.stats``);
- recorded seconds (segments in the SQLite store overlapping the window) / wall seconds;
- the child's CPU (``os.times``, user + system, all threads) as % of the machine's cores and
  per camera; its RSS (``/proc/self/status``), total and per camera;
- latency from frame capture (``Frame.wall_time``, stamped when the frame is decoded) to the
  end of its processing, when its detections, tracks, rule hits and events have been handed
  to the sinks (store, live hub); p50/p95 over every analysed frame, and over frames that
  emitted an event. Measured by wrapping each worker's ``_on_frame`` in the child (no hook
  in ``vigil/runtime``).

A camera keeps up when its analysed fps >= 95 % of 5 and it dropped no frame. The sweep stops
at the first N where the batched run does not keep up. The publishers' and relay's CPU over
the same run is reported separately (it is not Vigil's). Prints a table and writes
``bench/results/capacity.png`` and ``capacity.json``.

    python bench/capacity.py [--cameras 1,4,8,12,16,20,24] [--warmup 8] [--window 15]
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


@dataclass
class Probe:
    """Per-camera counters and latencies, filled from the worker thread."""

    analysed: int = 0
    events: int = 0
    latencies: list[float] = field(default_factory=list)
    event_latencies: list[float] = field(default_factory=list)
    measuring: bool = False


def instrument(worker: Any, probe: Probe, events: Callable[[], int]) -> None:
    """Wrap ``worker._on_frame`` (an instance attribute, so only this worker changes) and its
    detect-rate ``tick`` (called once per analysed frame) to count and time analysed frames."""
    on_frame, tick = worker._on_frame, worker._detect.tick

    def counting_tick(now: float) -> None:
        probe.analysed += probe.measuring
        tick(now)

    def timed_on_frame(pipeline: Any, frame: Any, live: bool) -> None:
        before, events_before = probe.analysed, events()
        on_frame(pipeline, frame, live)
        if probe.measuring and probe.analysed > before:
            latency = time.time() - frame.wall_time
            probe.latencies.append(latency)
            if events() > events_before:
                probe.event_latencies.append(latency)

    worker._detect.tick = counting_tick
    worker._on_frame = timed_on_frame


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


class CountingSink:
    """An ``EventSink`` that counts events per camera (for the event latency)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def publish(self, event: Any) -> None:
        self.counts[event.camera_id] = self.counts.get(event.camera_id, 0) + 1

    def close(self) -> None:
        pass


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
        "detect": {"model": spec["model"], "fps": TARGET_FPS, "labels": ["person"]},
        "detector": {"max_batch": spec["max_batch"]},
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
    sink = CountingSink()
    supervisor = Supervisor(config, db=db, sinks=[sink], stall_timeout=5.0)
    probes = {name: Probe() for name in supervisor.workers}
    for name, worker in supervisor.workers.items():
        instrument(worker, probes[name], lambda n=name: sink.counts.get(n, 0))  # type: ignore[misc]
    supervisor.start()
    # The relay sends a new client a burst of the stream's past seconds (faster than real
    # time): warm up from the moment every camera delivers frames, not from the start.
    deadline = time.monotonic() + 60.0
    while any(w.frames == 0 for w in supervisor.workers.values()):
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    time.sleep(spec["warmup"])

    skipped0 = {n: w.skipped_frames for n, w in supervisor.workers.items()}
    batch0 = supervisor.batcher.stats if supervisor.batcher else None
    cpu0, t0 = os.times(), time.time()
    for probe in probes.values():
        probe.measuring = True
    time.sleep(spec["window"])
    for probe in probes.values():
        probe.measuring = False
    cpu1, t1 = os.times(), time.time()
    batch1 = supervisor.batcher.stats if supervisor.batcher else None
    online = {n: w.online for n, w in supervisor.workers.items()}
    rss = rss_bytes()
    skipped = {n: w.skipped_frames - skipped0[n] for n, w in supervisor.workers.items()}
    supervisor.stop()

    wall = t1 - t0
    with db.session() as session:
        recorded = {
            name: sum(max(0.0, min(r.end, t1) - max(r.start, t0))
                      for r in SegmentRepo(session).list(name, t0, t1))
            for name in supervisor.workers
        }  # fmt: skip
    db.close()
    cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    images = (batch1.images - batch0.images) if batch0 and batch1 else 0
    batches = (batch1.batches - batch0.batches) if batch0 and batch1 else 0
    result = {
        "wall": wall, "cpu_s": cpu, "rss": rss, "rss_idle": rss_idle,
        "fps": {n: p.analysed / wall for n, p in probes.items()},
        "online": online, "errors": errors.counts,
        "skipped": skipped,
        "recorded": {n: v / wall for n, v in recorded.items()},
        "latencies": [x for p in probes.values() for x in p.latencies],
        "event_latencies": [x for p in probes.values() for x in p.event_latencies],
        "detector_images_per_s": images / wall, "batches": batches,
        "mean_batch": images / batches if batches else 0.0,
    }  # fmt: skip
    out_path.write_text(json.dumps(result))


# -- the parent: sweep N --------------------------------------------------------------------


@dataclass
class Row:
    cameras: int
    max_batch: int
    cpu_pct: float  # of all cores
    cpu_per_cam: float  # % of one core
    rss_mb: float
    rss_per_cam_mb: float
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


def run_once(relay: Relay, cameras: int, max_batch: int, args: argparse.Namespace) -> Row:
    """One child run with ``cameras`` cameras; the relay already publishes them."""
    with tempfile.TemporaryDirectory(prefix="vigil-capacity-") as tmp:
        folder = Path(tmp)
        spec = {
            "model": str(args.model), "max_batch": max_batch, "data_dir": str(folder / "data"),
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
        cameras=cameras, max_batch=max_batch, cpu_pct=cpu_pct,
        cpu_per_cam=cpu_pct * CORES / cameras, rss_mb=r["rss"] / 2**20,
        rss_per_cam_mb=r["rss"] / 2**20 / cameras, min_fps=min(fps),
        mean_fps=statistics.fmean(fps), dropped=dropped, recorded=min(r["recorded"].values()),
        p50_ms=1000 * percentile(lat, 50), p95_ms=1000 * percentile(lat, 95),
        event_p95_ms=1000 * percentile(r["event_latencies"], 95),
        det_img_s=r["detector_images_per_s"], mean_batch=r["mean_batch"],
        feeders_cpu_pct=100.0 * feeders / elapsed / CORES,
        errors=sum(v for k, v in r["errors"].items() if not k.startswith("WARNING")),
        keeps_up=min(fps) >= KEEP_UP * TARGET_FPS and dropped == 0 and all(r["online"].values()),
    )  # fmt: skip


HEADER = (
    f"{'N':>3} {'batch':>5} {'CPU%':>6} {'%core/cam':>9} {'RSS MB':>7} {'MB/cam':>7} "
    f"{'fps min':>7} {'fps avg':>7} {'drop':>5} {'rec':>5} {'p50 ms':>7} {'p95 ms':>7} "
    f"{'ev p95':>7} {'det/s':>6} {'b̄':>4} {'feed%':>6} {'err':>4} ok"
)


def fmt(row: Row) -> str:
    return (
        f"{row.cameras:>3} {row.max_batch:>5} {row.cpu_pct:>6.1f} {row.cpu_per_cam:>9.1f} "
        f"{row.rss_mb:>7.0f} {row.rss_per_cam_mb:>7.1f} {row.min_fps:>7.2f} "
        f"{row.mean_fps:>7.2f} {row.dropped:>5} {row.recorded:>5.2f} {row.p50_ms:>7.0f} "
        f"{row.p95_ms:>7.0f} {row.event_p95_ms:>7.0f} {row.det_img_s:>6.1f} "
        f"{row.mean_batch:>4.1f} {row.feeders_cpu_pct:>6.1f} {row.errors:>4} "
        f"{'yes' if row.keeps_up else 'NO'}"
    )


def plot(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for batch in sorted({r.max_batch for r in rows}, reverse=True):
        mine = [r for r in rows if r.max_batch == batch]
        label = f"max_batch={batch}" + (" (no batching)" if batch == 1 else "")
        xs = [r.cameras for r in mine]
        left.plot(xs, [r.cpu_pct for r in mine], "o-", label=label)
        right.plot(xs, [r.min_fps for r in mine], "o-", label=label)
    left.set(xlabel="cameras", ylabel=f"Vigil CPU % of {CORES} cores", ylim=(0, 105))
    right.axhline(KEEP_UP * TARGET_FPS, color="grey", ls="--", label="95 % of 5 fps")
    right.set(xlabel="cameras", ylabel="analysed fps, slowest camera", ylim=(0, 6))
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("vigil serve capacity: 1080p15 recorded + 360p5 analysed per camera")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def verdict(rows: list[Row]) -> list[str]:
    batched = [r for r in rows if r.max_batch != 1]
    ok = [r for r in batched if r.keeps_up]
    best = max(ok, key=lambda r: r.cameras) if ok else None
    n = best.cameras if best else 0
    lines = [f"cameras sustained (batched): {n}   goal >= 16: {'met' if n >= 16 else 'NOT met'}"]
    if best is not None:
        lines.append(
            f"at N={n}: {best.rss_per_cam_mb:.0f} MB/camera (goal < 150: "
            f"{'met' if best.rss_per_cam_mb < 150 else 'NOT met'}), p95 latency "
            f"{best.p95_ms:.0f} ms (goal < 500: {'met' if best.p95_ms < 500 else 'NOT met'})"
        )
        first = batched[0]
        if best.cameras > first.cameras:
            slope = (best.rss_mb - first.rss_mb) / (best.cameras - first.cameras)
            lines.append(f"marginal memory per camera (N={first.cameras}..{n}): {slope:.1f} MB")
        twin = [r for r in rows if r.max_batch == 1 and r.cameras == n]
        if twin:
            lines.append(
                f"at N={n} without batching: CPU {twin[0].cpu_pct:.1f} % vs "
                f"{best.cpu_pct:.1f} % (ratio {twin[0].cpu_pct / best.cpu_pct:.2f}), "
                f"fps min {twin[0].min_fps:.2f}, p95 {twin[0].p95_ms:.0f} ms"
            )
    unbatched = [r for r in rows if r.max_batch == 1 and r.keeps_up]
    lines.append(f"cameras sustained without batching: "
                 f"{max((r.cameras for r in unbatched), default=0)}")  # fmt: skip
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
    print(f"{CORES} cores; warm-up {args.warmup} s, window {args.window} s per run")
    print(HEADER, flush=True)
    try:
        for n in args.cameras:
            relay.grow(n)
            for batch in (args.batch, 1):
                row = run_once(relay, n, batch, args)
                rows.append(row)
                print(fmt(row), flush=True)
            if not rows[-2].keeps_up:
                break  # the batched run dropped: N is past capacity
    finally:
        relay.close()
    print()
    print("\n".join(verdict(rows)))
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(rows, RESULTS / "capacity.png")
    (RESULTS / "capacity.json").write_text(json.dumps([r.__dict__ for r in rows], indent=1))
    print(f"wrote {RESULTS / 'capacity.png'} and capacity.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cameras", default="1,4,8,12,16,20,24",
                        type=lambda s: [int(x) for x in s.split(",")])  # fmt: skip
    parser.add_argument("--warmup", type=float, default=8.0)
    parser.add_argument("--window", type=float, default=15.0)
    parser.add_argument("--batch", type=int, default=8, help="max_batch of the batched run")
    parser.add_argument("--model", type=Path, default=shared_models_dir() / "yolox_nano.onnx")
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
    else:
        sweep(args)


if __name__ == "__main__":
    main()
