"""``vigil demo``: the synthetic camera through the whole pipeline, no model or camera needed."""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path
from typing import Any

from rich.console import Console

from vigil.commands.analyze import print_summary
from vigil.config import parse_config
from vigil.ingest.synthetic import DEFAULT_DOWN_CROSSINGS, DEFAULT_UP_CROSSINGS
from vigil.runtime.analyze import AnalyzeOptions, analyze

DEMO_URL = "synthetic://?width=640&height=360&fps=10&duration=20"


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="run the synthetic demo camera through the whole pipeline",
        description="A synthetic scene (five walkers crossing a line) through motion gate, "
        "detector, tracker, rules and events, with the embedded default configuration.",
    )
    p.add_argument("--out", type=Path, default=Path("vigil-demo"), help="output folder")
    p.add_argument("--no-video", action="store_true", help="skip the annotated video")
    p.set_defaults(handler=run)


def demo_config_text() -> str:
    return (resources.files("vigil.runtime") / "demo.yaml").read_text(encoding="utf-8")


def _has_matplotlib() -> bool:
    from importlib.util import find_spec

    return find_spec("matplotlib") is not None


def run(args: argparse.Namespace) -> int:
    console = Console()
    config = parse_config(demo_config_text(), source="vigil/runtime/demo.yaml")
    camera = config.for_source(DEMO_URL, name="demo")
    console.print("[bold]Vigil demo[/]: a synthetic camera, 20 s at 10 fps, motion detector.")
    summary = analyze(
        DEMO_URL, camera, None,
        AnalyzeOptions(out_dir=args.out, annotate=not args.no_video, plot=_has_matplotlib()),
    )
    print_summary(summary, console)
    total = summary.counts["lines"]["crossing"]["total"]
    ok = (total["a_to_b"], total["b_to_a"]) == (DEFAULT_DOWN_CROSSINGS, DEFAULT_UP_CROSSINGS)
    verdict = "[green]as expected[/]" if ok else "[red]NOT as expected[/]"
    console.print(
        f"The scene holds {DEFAULT_DOWN_CROSSINGS} downward and {DEFAULT_UP_CROSSINGS} upward "
        f"crossings: counted {total['a_to_b']} and {total['b_to_a']}, {verdict}."
    )
    return 0 if ok else 1
