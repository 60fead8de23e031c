"""Counts over time as a picture: cumulative line crossings and zone entries."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from vigil.errors import VigilError
from vigil.types import RuleEvent, RuleEventKind


def count_series(events: Iterable[RuleEvent]) -> dict[str, list[float]]:
    """Times of each countable rule hit, keyed ``"line a_to_b"`` / ``"zone enter"``."""
    series: dict[str, list[float]] = {}
    for event in events:
        if event.kind is RuleEventKind.CROSS and event.direction is not None:
            key = f"{event.rule_id} {event.direction.value.replace('_', ' ')}"
        elif event.kind is RuleEventKind.ENTER:
            key = f"{event.rule_id} entries"
        else:
            continue
        series.setdefault(key, []).append(event.time)
    return series


def plot_counts(series: Mapping[str, list[float]], path: Path, *, end: float, live: bool) -> None:
    """Write a step chart of cumulative counts per series to ``path`` (PNG).

    Needs matplotlib (``pip install 'vigil[bench]'``); without it a clear error says so.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError as exc:
        raise VigilError(
            "plotting counts needs matplotlib: pip install 'vigil[bench]' (or matplotlib)"
        ) from exc
    fig, ax = plt.subplots(figsize=(8, 4))
    for name, times in sorted(series.items()):
        xs = [0.0, *sorted(times), end]
        ys = [0, *range(1, len(times) + 1), len(times)]
        ax.step(xs, ys, where="post", label=f"{name} ({len(times)})")
    ax.set_xlabel("UTC seconds" if live else "video time (s)")
    ax.set_ylabel("cumulative count")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("Counts over time")
    ax.grid(alpha=0.3)
    if series:
        ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
