"""``vigil demo``: the product on a demo camera, no camera or model needed.

By default it runs ``vigil serve`` on 127.0.0.1 with one camera, a drawn street in front of a
shop played as a file camera (real time, looped, recorded), and prints the one-time link that
creates the first administrator in the web interface; events, clips and counts fill in as
people and cars pass. It runs until Ctrl-C (or ``--seconds``). Its data live in a temporary
folder, removed at the end, unless ``--data-dir`` names one to keep.

``--no-serve`` keeps the batch run: the synthetic scene through ``vigil analyze``'s pipeline,
checked against the crossings it holds, with outputs in the cache (or ``--out``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import tempfile
import threading
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

DEMO_URL = "synthetic://?width=640&height=360&fps=10&duration=20"
CAMERA = "street"


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="try Vigil: a demo camera through the server and web interface",
        description="Runs vigil serve with a demo camera (a street in front of a shop: people "
        "and cars, a door line, a road zone) and its web interface on 127.0.0.1, until Ctrl-C. "
        "No camera, model or download is needed.",
    )
    p.add_argument("--seconds", type=float, metavar="N", help="stop by itself after N seconds")
    p.add_argument("--port", type=int, default=8080,
                   help="web interface port (default 8080; a free one if taken)")  # fmt: skip
    p.add_argument("--data-dir", type=Path, metavar="DIR",
                   help="keep recordings and the database here (default: a temporary folder "
                   "removed when the demo ends)")  # fmt: skip
    p.add_argument("--no-serve", action="store_true",
                   help="the batch run instead: the synthetic scene through the pipeline, "
                   "events and counts printed, outputs written to --out")  # fmt: skip
    p.add_argument("--out", type=Path, default=None,
                   help="with --no-serve: output folder (default <cache>/demo-output)")  # fmt: skip
    p.add_argument("--no-video", action="store_true",
                   help="with --no-serve: skip the annotated video")  # fmt: skip
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from vigil.errors import ConfigError

    if args.seconds is not None and args.seconds <= 0:
        raise ConfigError(f"--seconds must be > 0, got {args.seconds}")
    if not args.no_serve and (args.out is not None or args.no_video):
        raise ConfigError("--out and --no-video are for the batch demo: add --no-serve")
    return _batch(args) if args.no_serve else _serve(args)


# -- the server demo ----------------------------------------------------------------------------


def demo_config(data_dir: Path, video: Path, port: int) -> dict[str, Any]:
    """The demo's ``vigil serve`` configuration: one file camera with a door line and a road
    zone, the model-free motion detector, plain HTTP on loopback."""
    from vigil.runtime.demo_scene import DOOR_LINE, ROAD_ZONE

    return {
        "data_dir": str(data_dir),
        "server": {"host": "127.0.0.1", "port": port, "secure_cookies": False},
        "detect": {"model": "motion", "fps": 5},
        "motion": {"threshold": 25},
        "tracker": {"new_track_threshold": 0.5, "high_threshold": 0.4},
        "events": {"min_duration": 0.5},
        "record": {"mode": "continuous", "segment_seconds": 10, "max_age": 3600},
        "cameras": {CAMERA: {
            "sources": [{"url": str(video), "loop": True}],
            "lines": {"door": {"points": DOOR_LINE}},
            "zones": {"road": {"polygon": ROAD_ZONE}},
        }},
    }  # fmt: skip


def _free_port(wanted: int) -> int:
    """``wanted`` when nothing listens there, else one the system picks."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", wanted))
            return wanted
        except OSError:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])


def _stop_after(seconds: float) -> threading.Timer:
    """SIGINT to this process after ``seconds``: the same graceful stop as Ctrl-C."""
    timer = threading.Timer(seconds, os.kill, args=(os.getpid(), signal.SIGINT))
    timer.daemon = True
    timer.start()
    return timer


def _serve(args: argparse.Namespace) -> int:
    from vigil.commands.serve import serve
    from vigil.config.models import VigilConfig
    from vigil.paths import cache_dir
    from vigil.runtime.demo_scene import SCENE_VERSION, render_demo_video

    console = Console()
    video = cache_dir() / "demo" / f"street-v{SCENE_VERSION}.mp4"
    if not video.is_file():
        with console.status("Drawing the demo camera's footage (once, a few seconds)…"):
            video.parent.mkdir(parents=True, exist_ok=True)
            render_demo_video(video)
    temporary = args.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="vigil-demo-")) if temporary else args.data_dir
    port = _free_port(args.port)
    raw = demo_config(data_dir.resolve(), video, port)
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "demo.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    console.print(
        f"[bold]Vigil demo[/]: camera [bold]{CAMERA}[/] is a street in front of a shop; people "
        "walk past and into the shop, cars drive by. The [bold]door[/] line counts who enters "
        "and leaves, the [bold]road[/] zone what passes."
    )
    where = "a temporary folder, removed at the end" if temporary else "kept"
    console.print(f"Data: {data_dir} ({where}); configuration: {data_dir / 'demo.yaml'}")
    if port != args.port:
        console.print(f"Port {args.port} is taken; using {port}.")
    timer = _stop_after(args.seconds) if args.seconds is not None else None
    console.print(
        "Ctrl-C stops the demo."
        if timer is None
        else f"The demo stops by itself after {args.seconds:g} s, or on Ctrl-C."
    )

    def announce(line: str) -> None:
        console.print(line, highlight=False, soft_wrap=True)

    try:
        return serve(VigilConfig.model_validate(raw), access_log=False, announce=announce)
    finally:
        if timer is not None:
            timer.cancel()
        if temporary:
            shutil.rmtree(data_dir, ignore_errors=True)


# -- the batch demo -----------------------------------------------------------------------------


def demo_config_text() -> str:
    return (resources.files("vigil.runtime") / "demo.yaml").read_text(encoding="utf-8")


def _has_matplotlib() -> bool:
    from importlib.util import find_spec

    return find_spec("matplotlib") is not None


def _batch(args: argparse.Namespace) -> int:
    from vigil.commands.analyze import print_summary
    from vigil.config import parse_config
    from vigil.ingest.synthetic import DEFAULT_DOWN_CROSSINGS, DEFAULT_UP_CROSSINGS
    from vigil.paths import cache_dir
    from vigil.runtime.analyze import AnalyzeOptions, analyze

    console = Console()
    out = args.out if args.out is not None else cache_dir() / "demo-output"
    config = parse_config(demo_config_text(), source="vigil/runtime/demo.yaml")
    camera = config.for_source(DEMO_URL, name="demo")
    console.print("[bold]Vigil demo[/]: a synthetic camera, 20 s at 10 fps, motion detector.")
    summary = analyze(
        DEMO_URL,
        camera,
        None,
        AnalyzeOptions(out_dir=out, annotate=not args.no_video, plot=_has_matplotlib()),
    )
    print_summary(summary, console)
    total = summary.counts["lines"]["crossing"]["total"]
    ok = (total["a_to_b"], total["b_to_a"]) == (DEFAULT_DOWN_CROSSINGS, DEFAULT_UP_CROSSINGS)
    verdict = "[green]as expected[/]" if ok else "[red]NOT as expected[/]"
    console.print(
        f"The scene holds {DEFAULT_DOWN_CROSSINGS} downward and {DEFAULT_UP_CROSSINGS} upward "
        f"crossings: counted {total['a_to_b']} and {total['b_to_a']}, {verdict}."
    )
    console.print(f"Outputs: {out}")
    return 0 if ok else 1
