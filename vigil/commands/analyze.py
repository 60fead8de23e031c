"""``vigil analyze VIDEO``: the pipeline over one file or URL, results in a folder."""

from __future__ import annotations

import argparse
import getpass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table

from vigil.config import load_config
from vigil.config.models import ResolvedCamera
from vigil.detect.base import Detector
from vigil.errors import ConfigError
from vigil.privacy.audit import UnredactedGrant, unredacted_access
from vigil.privacy.redactor import default_audit_path
from vigil.runtime.analyze import AnalyzeOptions, AnalyzeSummary, analyze


def register(sub: Any) -> None:
    p = sub.add_parser(
        "analyze",
        help="detect, track and apply rules to a video file or stream",
        description="Run Vigil's pipeline on VIDEO and write events.jsonl, counts.json and "
        "tracks.txt (MOTChallenge) to --out.",
    )
    p.add_argument("video", help="file path or rtsp://, http(s)://, synthetic:// URL")
    p.add_argument("--config", type=Path, help="YAML configuration (zones, lines, settings)")
    p.add_argument("--camera", help="analyse as this camera of the config (its rules)")
    p.add_argument("--model", help="registry name, ONNX path, or 'motion' (no model)")
    p.add_argument("--detect-fps", type=float, help="frames per second to analyse")
    p.add_argument("--out", type=Path, default=Path("vigil-out"), help="output folder")
    p.add_argument("--annotate", action="store_true", help="also write annotated.mp4 (redacted)")
    p.add_argument("--snapshots", action="store_true", help="write each event's best frame")
    p.add_argument("--plot", action="store_true", help="also write counts.png (over time)")
    p.add_argument("--duration", type=float, help="stop after this many seconds of video")
    p.add_argument(
        "--unredacted",
        action="store_true",
        help="write pixels without redaction (needs --reason; recorded in the audit file)",
    )
    p.add_argument("--reason", help="why unredacted output is needed (audited)")
    p.add_argument("--audit-file", type=Path, help="audit file for --unredacted")
    p.add_argument(
        "--no-decode-thread",
        dest="decode_thread",
        action="store_false",
        help="decode in the analysis thread (by default a thread of its own decodes ahead)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def camera_from_args(args: argparse.Namespace) -> ResolvedCamera:
    """The camera settings: config file, then command-line overrides."""
    config = load_config(args.config)
    if args.camera:
        if args.camera not in config.cameras:
            known = ", ".join(sorted(config.cameras)) or "none"
            raise ConfigError(f"camera {args.camera!r} is not in {args.config} (known: {known})")
        camera = config.camera(args.camera)
    else:
        camera = config.for_source(args.video)
    detect: dict[str, Any] = {}
    if args.model:
        detect["model"] = args.model
    if args.detect_fps:
        detect["fps"] = args.detect_fps
    if detect:
        camera = camera.model_copy(update={"detect": camera.detect.model_copy(update=detect)})
    return camera


def build(camera: ResolvedCamera, *, decode_thread: bool = True) -> Detector | None:
    """The camera's detector, or None for the model-free motion detector.

    Unless ``detect.threads`` is set, the detector's thread count leaves a core to the
    decode thread when there is one (``vigil.detect.threads``).
    """
    if camera.detect.is_motion:
        return None
    from vigil.detect import build_detector, detector_threads

    threads = detector_threads(camera.detect.threads, decode_thread=decode_thread)
    return build_detector(camera.detect.model_copy(update={"threads": threads}))


def _grant(args: argparse.Namespace) -> UnredactedGrant | None:
    if not args.unredacted:
        return None
    if not (args.annotate or args.snapshots):
        raise ConfigError("--unredacted only applies to --annotate or --snapshots output")
    return unredacted_access(
        reason=args.reason or "",
        actor=getpass.getuser(),
        audit_path=args.audit_file or default_audit_path(),
        what=f"vigil analyze {args.video} → {args.out}",
    )


def run(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    camera = camera_from_args(args)
    detector = build(camera, decode_thread=args.decode_thread)
    options = AnalyzeOptions(
        out_dir=args.out,
        annotate=args.annotate,
        snapshots=args.snapshots,
        plot=args.plot,
        max_seconds=args.duration,
        grant=_grant(args),
        decode_thread=args.decode_thread,
    )
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        "frames",
        TimeRemainingColumn(),
        console=console,
        disable=args.quiet,
        transient=True,
    ) as bar:
        task = bar.add_task(f"analysing {Path(args.video).name}", total=None)

        def progress(done: int, total: int | None) -> None:
            if done % 10 == 0 or done == total:
                bar.update(task, completed=done, total=total)

        summary = analyze(args.video, camera, detector, options, progress)
    print_summary(summary, Console())
    return 0


def print_summary(summary: AnalyzeSummary, console: Console) -> None:
    console.print(
        f"[bold]{summary.source}[/]: {summary.frames} frames ({summary.analysed} analysed, "
        f"{summary.inferences} detector calls) in {summary.seconds:.1f} s "
        f"= {summary.fps:.0f} frames/s"
    )
    by_label: dict[str, int] = {}
    for event in summary.events:
        by_label[event["label"]] = by_label.get(event["label"], 0) + 1
    table = Table(title=f"{len(summary.events)} events")
    table.add_column("label")
    table.add_column("events", justify="right")
    for label, n in sorted(by_label.items()):
        table.add_row(label, str(n))
    console.print(table)
    for name, line in summary.counts.get("lines", {}).items():
        total = line["total"]
        console.print(f"line [bold]{name}[/]: A→B {total['a_to_b']}, B→A {total['b_to_a']}")
    for name, zone in summary.counts.get("zones", {}).items():
        console.print(
            f"zone [bold]{name}[/]: {zone['entries']['total']} entries, "
            f"max occupancy {zone['occupancy']['max']}{_traffic_text(zone)}"
        )
    console.print("written: " + ", ".join(str(p) for p in summary.outputs))


def _traffic_text(zone: dict[str, Any]) -> str:
    """A calibrated or one-way zone's extra figures for the summary line ("" for others)."""
    parts = []
    speed = zone.get("speed")
    if speed and speed.get("mean") is not None:
        parts.append(
            f"mean speed {speed['mean']:.1f} {speed['unit']} over {speed['tracks']} track(s), "
            f"top {speed['max']:.1f}"
        )
    for kind in ("speeding", "wrong_way", "stopped"):
        if f"{kind}_events" in zone:
            parts.append(f"{zone[f'{kind}_events']} {kind.replace('_', '-')}")
    return "".join(f", {p}" for p in parts)
