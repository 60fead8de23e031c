"""GPU capacity: 1080p30 H.264 streams per GPU, with the CPU of the same machine as baseline.

One prepared run (``--quick``: about 3-5 minutes on an H100/H200 host; the full run stays
under 10) measures, on a 1920x1080 30 fps H.264 copy of the shared clip
``one-by-one-person-detection.mp4`` (upscaled once with ffmpeg into
``bench/results/gpu_cache/``):

1. decode only, the way Vigil decodes (``AvSource``, luma plane of every frame), in
   ``--procs`` processes x ``--streams-per-proc`` threads at once: software (FFmpeg on the
   CPU) and NVDEC (``hwaccel: cuda``, frames copied back to system memory), plus
   PyNvVideoCodec with frames left in GPU memory when it is installed.
   Streams = decoded frames/s / 30.
2. detector only, images/s, for YOLOX-Nano and YOLOX-S (whichever of ``yolox_nano.onnx``,
   ``yolox_s.onnx`` the shared models folder or the model cache holds), on frames already
   scaled to the network's size as the pipeline hands them over: CPU FP32 (batches 1 and 8:
   the CPU gains nothing from larger ones) and, on a GPU, TensorRT FP16 and CUDA FP16
   (batches 1, 2, 4 … 64). The TensorRT engine build (first run only; cached in
   ``--engine-cache``) is timed separately.
3. whole pipeline: ``--procs`` processes x ``--streams-per-proc`` streams (threads sharing
   one batching detector per process, as ``vigil serve`` shares one), each stream decoding the
   clip as fast as it can and running the motion gate, YOLOX-Nano at 5 fps, tracking and rules
   (a line and a zone). Streams = frames/s of all streams together / 30. CPU: software
   decoding and the CPU provider; GPU: NVDEC and TensorRT FP16.

Without a usable NVIDIA GPU (no CUDA provider that starts, no NVDEC) it runs the CPU parts,
says clearly that no GPU was found, and exits 0 (``--require-gpu``: exits 2 instead).

    python bench/gpu.py [--quick] [--require-gpu] [--seconds 10] [--procs N]
                        [--streams-per-proc 4] [--batches 1,2,4,8,16,32,64]

A GPU host needs the ``gpu`` extra (docs/gpu.md: onnxruntime-gpu replaces onnxruntime).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from vigil.config import parse_config
from vigil.detect.onnx import OnnxDetector
from vigil.detect.providers import CUDA, TENSORRT, Device, GpuOptions
from vigil.ingest import AvSource
from vigil.ingest.hwaccel import device_problem
from vigil.paths import cache_dir, shared_data_dir, shared_models_dir
from vigil.runtime.batcher import BatchingDetector
from vigil.runtime.pipeline import CameraPipeline

RESULTS = Path(__file__).resolve().parent / "results"
CACHE = RESULTS / "gpu_cache"
CLIP = "one-by-one-person-detection.mp4"
STREAM_FPS = 30.0
MODELS = {"yolox-nano": "yolox_nano.onnx", "yolox-s": "yolox_s.onnx"}
# People leave the table towards the right edge; the zone is the floor in front of it.
RULES = """
detect: {labels: [person], fps: 5, threads: 2}
lines:
  exit: {points: [[0.75, 0.55], [0.75, 1.0]]}
zones:
  floor: {polygon: [[0.3, 0.5], [0.9, 0.5], [0.9, 1.0], [0.3, 1.0]]}
"""


@dataclass
class Machine:
    """What this host offers; ``gpu`` is true only when something really runs on one."""

    providers: list[str]
    cuda_session: str | None  # why a CUDA session could not start, None when it did
    nvdec: str | None  # why NVDEC could not open, None when it did
    gpu_name: str = ""
    pynvvideocodec: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def cuda(self) -> bool:
        return self.cuda_session is None

    @property
    def gpu(self) -> bool:
        return self.cuda or self.nvdec is None


@dataclass(frozen=True)
class Plan:
    """What one run measures, and on what."""

    clip: Path
    machine: Machine
    models: dict[str, Path]
    procs: int
    streams_per_proc: int
    seconds: float
    batches: list[int]
    engine_cache: Path


@dataclass(frozen=True)
class PipelineJob:
    """One worker process's share of the whole-pipeline run (pickled to a child)."""

    clip: str
    model: str
    streams: int
    seconds: float
    device: Device
    fp16: bool
    hwaccel: bool
    engine_cache: str


# -- the machine and the footage ---------------------------------------------------------


def _nvidia_smi() -> str:
    if shutil.which("nvidia-smi") is None:
        return ""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip().replace("\n", "; ")


def _cuda_session_problem(model: Path) -> str | None:
    providers = ort.get_available_providers()
    if CUDA not in providers:
        return f"onnxruntime {ort.__version__} has no CUDA provider ({providers})"
    try:
        OnnxDetector(model, device="cuda", max_batch=1)
    except Exception as exc:  # the bench reports, it does not stop
        return f"{type(exc).__name__}: {exc}"
    return None


def probe_machine(model: Path) -> Machine:
    try:
        import PyNvVideoCodec  # noqa: F401

        nvc = True
    except ImportError:
        nvc = False
    return Machine(
        providers=list(ort.get_available_providers()),
        cuda_session=_cuda_session_problem(model),
        nvdec=device_problem("cuda"),
        gpu_name=_nvidia_smi(),
        pynvvideocodec=nvc,
    )


def make_clip(size: tuple[int, int], seconds: float, folder: Path = CACHE) -> Path:
    """The shared clip as ``size`` H.264 at 30 fps, ``seconds`` long (looped if needed),
    GOP 1 s and no B-frames, as cameras send; made once per size and length."""
    src = shared_data_dir() / "clips" / CLIP
    if not src.is_file():
        sys.exit(f"{src} is missing: set VIGIL_SHARED_DIR to the shared folder")
    if shutil.which("ffmpeg") is None:
        sys.exit("ffmpeg is needed to make the 1080p30 clip: apt-get install ffmpeg")
    width, height = size
    out = folder / f"{src.stem}-{width}x{height}p30-{seconds:g}s.mp4"
    if out.is_file():
        return out
    folder.mkdir(parents=True, exist_ok=True)
    part = out.with_suffix(".part.mp4")
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-stream_loop", "-1", "-i", str(src),
         "-t", f"{seconds:g}", "-vf", f"scale={width}:{height}:flags=bicubic,fps=30",
         "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-g", "30", "-bf", "0",
         "-pix_fmt", "yuv420p", "-an", str(part)],
        check=True,
    )  # fmt: skip
    part.replace(out)
    return out


def find_models() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for name, filename in MODELS.items():
        for folder in (shared_models_dir(), cache_dir()):
            if (folder / filename).is_file():
                found[name] = folder / filename
                break
    return found


# -- workers (run in child processes: spawn, so CUDA is initialised in each) ---------------


def _decode_worker(
    clip: str, mode: str, seconds: float, device_id: int, streams: int
) -> tuple[int, float]:
    """Decode ``clip`` over and over in ``streams`` threads for ``seconds``; returns
    (frames, elapsed). FFmpeg decodes with the GIL released, so threads decode in parallel."""
    counts = [0] * streams
    start = time.perf_counter()

    nvdec = {"hwaccel": "cuda", "hwaccel_device": str(device_id)}

    def run(index: int) -> None:
        while time.perf_counter() - start < seconds:
            if mode == "pynvvideocodec":
                counts[index] += _decode_nvc(clip, device_id)
                continue
            options = nvdec if mode == "nvdec" else {}
            source = AvSource(clip, options=options)
            for frame in source.frames():
                counts[index] += frame.luma.size > 0
                if time.perf_counter() - start >= seconds:
                    source.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(streams)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts), time.perf_counter() - start


def _decode_nvc(clip: str, device_id: int) -> int:
    """One pass of ``clip`` through PyNvVideoCodec, frames left in GPU memory."""
    import PyNvVideoCodec

    demuxer = PyNvVideoCodec.CreateDemuxer(filename=clip)
    decoder = PyNvVideoCodec.CreateDecoder(
        gpuid=device_id, codec=demuxer.GetNvCodecId(), cudacontext=0, cudastream=0,
        usedevicememory=True,
    )  # fmt: skip
    frames = 0
    for packet in demuxer:
        frames += len(decoder.Decode(packet))
    return frames


def _pipeline_worker(job: PipelineJob) -> tuple[int, int, float, float]:
    """``job.streams`` pipelines in threads over the clip, one batching detector; returns
    (frames, images inferred, elapsed, mean batch)."""
    detector = OnnxDetector(
        Path(job.model), labels=["person"], max_batch=64, device=job.device, threads=2,
        gpu=GpuOptions(fp16=job.fp16, engine_cache=Path(job.engine_cache)),
    )  # fmt: skip
    shared = BatchingDetector(detector, max_batch=64, max_wait=0.005)
    camera = parse_config(RULES).for_source(job.clip)
    counts = [0] * job.streams
    start = time.perf_counter()
    options = {"hwaccel": "cuda"} if job.hwaccel else {}
    seconds = job.seconds

    def run(index: int) -> None:
        while time.perf_counter() - start < seconds:
            source = AvSource(job.clip, camera_id=f"cam{index}", options=options)
            info = source.open()
            pipeline = CameraPipeline(camera, shared, (info.width, info.height),
                                      source_fps=info.fps)  # fmt: skip
            for frame in source.frames():
                pipeline.process(frame)
                counts[index] += 1
                if time.perf_counter() - start >= seconds:
                    source.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(job.streams)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    stats = shared.stats
    shared.close()
    return sum(counts), stats.images, elapsed, stats.mean_batch


def _parallel(fn: Callable[..., Any], args: list[Any], star: bool = True) -> list[Any]:
    with mp.get_context("spawn").Pool(len(args)) as pool:
        return pool.starmap(fn, args) if star else pool.map(fn, args)


# -- the three measurements -----------------------------------------------------------------


def bench_decode(plan: Plan) -> list[dict[str, Any]]:
    machine, procs = plan.machine, plan.procs
    modes = ["software"]
    if machine.nvdec is None:
        modes.append("nvdec")
    if machine.pynvvideocodec and machine.nvdec is None:
        modes.append("pynvvideocodec")
    rows = []
    for mode in modes:
        try:
            job = (str(plan.clip), mode, plan.seconds, 0, plan.streams_per_proc)
            results = _parallel(_decode_worker, [job] * procs)
        except Exception as exc:  # report and go on: one failing decoder is a finding
            rows.append({"mode": mode, "error": f"{type(exc).__name__}: {exc}"})
            continue
        fps = sum(frames / elapsed for frames, elapsed in results)
        rows.append({"mode": mode, "procs": procs, "streams_run": procs * plan.streams_per_proc,
                     "fps": fps, "streams": fps / STREAM_FPS})  # fmt: skip
    return rows


def _scaled_frames(clip: Path, size: tuple[int, int], count: int = 8) -> list[np.ndarray]:
    """Frames of ``clip`` scaled to fit ``size`` = (w, h) keeping the aspect, as the pipeline
    asks FFmpeg for them (``Frame.bgr(size)``)."""
    images: list[np.ndarray] = []
    source = AvSource(str(clip))
    for index, frame in enumerate(source.frames()):
        if index % 15 == 0:
            scale = min(size[0] / frame.width, size[1] / frame.height)
            images.append(frame.bgr((round(frame.width * scale), round(frame.height * scale))))
        if len(images) == count:
            source.close()
    return images


def _images_per_second(detector: OnnxDetector, images: list[np.ndarray], batch: int,
                       seconds: float) -> float:  # fmt: skip
    work = [images[i % len(images)] for i in range(batch)]
    detector.detect_batch(work)  # warm-up: CUDA kernels, cuDNN search, TensorRT profiles
    detector.detect_batch(work)
    calls, start = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - start < seconds:
        detector.detect_batch(work)
        calls += 1
    return calls * batch / (time.perf_counter() - start)


def bench_detector(plan: Plan) -> list[dict[str, Any]]:
    machine, batches, seconds = plan.machine, plan.batches, plan.seconds
    configs: list[tuple[str, Device, bool, list[int]]] = [
        ("cpu fp32", "cpu", False, [b for b in (1, 8) if b <= max(batches)])
    ]
    if machine.cuda:
        if TENSORRT in machine.providers:
            configs.append(("tensorrt fp16", "tensorrt", True, batches))
        configs.append(("cuda fp16", "cuda", True, batches))
        configs.append(("cuda fp32", "cuda", False, batches[:1] + batches[-1:]))
    rows = []
    for name, path in plan.models.items():
        for label, device, fp16, sizes in configs:
            started = time.perf_counter()
            try:
                detector = OnnxDetector(
                    path, max_batch=max(batches), device=device,
                    threads=(os.cpu_count() or 1) if device == "cpu" else 1,
                    gpu=GpuOptions(fp16=fp16, engine_cache=plan.engine_cache),
                )  # fmt: skip
                load_s = time.perf_counter() - started
                images = _scaled_frames(plan.clip, detector.input_size)
                for batch in sizes:
                    rate = _images_per_second(detector, images, batch, seconds)
                    rows.append({"model": name, "config": label, "batch": batch,
                                 "images_s": rate, "load_s": load_s,
                                 "provider": detector.providers[0]})  # fmt: skip
            except Exception as exc:
                rows.append({"model": name, "config": label, "error": f"{exc}"})
    return rows


def bench_pipeline(plan: Plan) -> list[dict[str, Any]]:
    machine, procs = plan.machine, plan.procs
    setups: list[tuple[str, Device, bool, bool]] = [("cpu: software decode, cpu", "cpu", False,
                                                     False)]  # fmt: skip
    if machine.cuda:
        device: Device = "tensorrt" if TENSORRT in machine.providers else "cuda"
        setups.append((f"gpu: nvdec, {device} fp16", device, True, machine.nvdec is None))
    rows = []
    for label, device, fp16, hwaccel in setups:
        job = PipelineJob(
            clip=str(plan.clip), model=str(plan.models["yolox-nano"]),
            streams=plan.streams_per_proc, seconds=2 * plan.seconds, device=device, fp16=fp16,
            hwaccel=hwaccel, engine_cache=str(plan.engine_cache),
        )  # fmt: skip
        try:
            results = _parallel(_pipeline_worker, [job] * procs, star=False)
        except Exception as exc:
            rows.append({"setup": label, "error": f"{type(exc).__name__}: {exc}"})
            continue
        fps = sum(frames / elapsed for frames, _, elapsed, _ in results)
        images = sum(images / elapsed for _, images, elapsed, _ in results)
        rows.append({
            "setup": label, "procs": procs, "streams_run": procs * plan.streams_per_proc,
            "fps": fps,
            "streams": fps / STREAM_FPS, "images_s": images,
            "mean_batch": statistics.mean(r[3] for r in results),
        })  # fmt: skip
    return rows


# -- report ---------------------------------------------------------------------------------


def _ratio(rows: list[dict[str, Any]], key: str, base: dict[str, Any] | None) -> str:
    if base is None or key not in base or not base[key]:
        return ""
    return "  ".join(f"{r.get('mode') or r.get('setup')}: {r[key] / base[key]:.1f}x"
                     for r in rows if key in r)  # fmt: skip


def report(machine: Machine, clip: Path, size: tuple[int, int], results: dict[str, Any]) -> None:
    streams = f"{size[0]}x{size[1]}p30 streams"
    print(f"\nclip: {clip.name}; onnxruntime {ort.__version__}, providers {machine.providers}")
    print(f"GPU: {machine.gpu_name or 'none reported by nvidia-smi'}")
    if not machine.gpu:
        print("NO GPU FOUND: the GPU rows were not run. CUDA provider: "
              f"{machine.cuda_session}; NVDEC: {machine.nvdec}")  # fmt: skip
    print("\n1. decode only (AvSource, every frame's luma)")
    print(f"{'mode':<16} {'procs':>5} {'streams run':>11} {'frames/s':>10} {streams:>16}")
    for row in results["decode"]:
        if "error" in row:
            print(f"{row['mode']:<16} failed: {row['error']}")
            continue
        print(f"{row['mode']:<16} {row['procs']:>5} {row['streams_run']:>11} {row['fps']:>10.0f} "
              f"{row['streams']:>16.1f}")  # fmt: skip
    soft = next((r for r in results["decode"] if r["mode"] == "software" and "fps" in r), None)
    print(f"vs software: {_ratio(results['decode'], 'fps', soft)}")
    print("\n2. detector only (frames pre-scaled to the network input)")
    print(f"{'model':<11} {'config':<14} {'batch':>5} {'images/s':>10} {'load s':>7}  provider")
    for row in results["detector"]:
        if "error" in row:
            print(f"{row['model']:<11} {row['config']:<14} failed: {row['error']}")
            continue
        print(f"{row['model']:<11} {row['config']:<14} {row['batch']:>5} "
              f"{row['images_s']:>10.0f} {row['load_s']:>7.1f}  {row['provider']}")  # fmt: skip
    print("\n3. whole pipeline (motion gate, detect 5 fps, tracking, line + zone rules)")
    print(f"{'setup':<32} {'procs':>5} {'streams run':>11} {'frames/s':>9} "
          f"{'images/s':>9} {'batch':>6} {streams:>16}")  # fmt: skip
    for row in results["pipeline"]:
        if "error" in row:
            print(f"{row['setup']:<32} failed: {row['error']}")
            continue
        print(f"{row['setup']:<32} {row['procs']:>5} {row['streams_run']:>11} "
              f"{row['fps']:>9.0f} {row['images_s']:>9.0f} {row['mean_batch']:>6.1f} "
              f"{row['streams']:>16.1f}")  # fmt: skip
    cpu = next((r for r in results["pipeline"] if r["setup"].startswith("cpu") and "fps" in r),
               None)  # fmt: skip
    print(f"vs cpu: {_ratio(results['pipeline'], 'fps', cpu)}")
    print("goal: >= 100 1080p30 streams per H100-class GPU (anchor: NVIDIA RT-CV, 50/H100)")


def _size(text: str) -> tuple[int, int]:
    width, height = text.lower().split("x")
    return int(width), int(height)


def _batches(text: str) -> list[int]:
    values = sorted({int(v) for v in text.split(",") if v.strip()})
    if not values or values[0] < 1 or values[-1] > 256:
        raise argparse.ArgumentTypeError("batches are 1..256, e.g. 1,2,4,8")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer batch sizes and shorter windows (~3-5 min on a GPU host)",
    )
    parser.add_argument(
        "--require-gpu", action="store_true", help="exit 2 when no usable NVIDIA GPU is found"
    )
    parser.add_argument(
        "--seconds", type=float, default=None, help="measuring window per row (default 10, quick 5)"
    )
    parser.add_argument(
        "--procs", type=int, default=None, help="worker processes (default: cores, at most 16)"
    )
    parser.add_argument("--streams-per-proc", type=int, default=4)
    parser.add_argument(
        "--batches",
        type=_batches,
        default=None,
        help="detector batch sizes (default 1,2,4,...,64; quick 1,8,64)",
    )
    parser.add_argument("--size", type=_size, default=(1920, 1080), help="clip size WxH")
    parser.add_argument("--clip-seconds", type=float, default=20.0)
    parser.add_argument("--models", default="yolox-nano,yolox-s")
    parser.add_argument(
        "--engine-cache",
        type=Path,
        default=None,
        help="TensorRT engine cache (default: a fresh temporary folder, so the "
        "first TensorRT row's load time is the engine build)",
    )
    parser.add_argument("--json", type=Path, default=RESULTS / "gpu.json")
    parser.add_argument("--work", type=Path, default=CACHE, help="where the clip is made")
    args = parser.parse_args(argv)  # fmt: skip
    seconds = args.seconds if args.seconds is not None else (5.0 if args.quick else 10.0)
    procs = args.procs or min(16, os.cpu_count() or 1)
    batches = args.batches or ([1, 8, 64] if args.quick else [1, 2, 4, 8, 16, 32, 64])
    models = {k: v for k, v in find_models().items() if k in args.models.split(",")}
    if "yolox-nano" not in models:
        print("yolox_nano.onnx not found in the shared models folder or the model cache "
              "(vigil models pull yolox-nano)", file=sys.stderr)  # fmt: skip
        return 1
    machine = probe_machine(models["yolox-nano"])
    if not machine.gpu:
        print(f"NO GPU FOUND (CUDA provider: {machine.cuda_session}; NVDEC: {machine.nvdec}); "
              "running the CPU baseline only", flush=True)  # fmt: skip
        if args.require_gpu:
            print("--require-gpu: stopping", file=sys.stderr)
            return 2
    missing = sorted(set(args.models.split(",")) - set(models))
    if missing:
        print(f"not found, skipped: {', '.join(missing)} (vigil models pull NAME)")
    clip = make_clip(args.size, args.clip_seconds, args.work)
    with tempfile.TemporaryDirectory(prefix="vigil-trt-") as tmp:
        plan = Plan(
            clip=clip, machine=machine, models=models, procs=procs,
            streams_per_proc=args.streams_per_proc, seconds=seconds, batches=batches,
            engine_cache=args.engine_cache or Path(tmp),
        )  # fmt: skip
        results = {
            "decode": bench_decode(plan),
            "detector": bench_detector(plan),
            "pipeline": bench_pipeline(plan),
        }
    report(machine, clip, args.size, results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    record = {"machine": {**machine.__dict__, "gpu": machine.gpu}, "clip": clip.name,
              "args": sys.argv[1:] if argv is None else argv, **results}  # fmt: skip
    args.json.write_text(json.dumps(record, indent=2, default=str) + "\n")
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
