"""The counts page's class filter and live "Now" table in a real browser, against a real
``vigil serve`` whose camera is the synthetic scene (no RTSP, no model: the motion-blob
detector, label ``motion``) with a line and a calibrated zone that measures speeds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.alerts.alert_servers import free_port
from tests.web.conftest import (
    Pages,
    Server,
    checked_pages,
    login,
    serve_with_admin,
    wait_until,
)

pytestmark = pytest.mark.slow

CONFIG = """
detect: {{model: motion, fps: 10}}
tracker: {{new_track_threshold: 0.5, high_threshold: 0.4}}
data_dir: "{data}"
record: {{mode: "off"}}
server: {{host: 127.0.0.1, port: {port}, secure_cookies: false}}
cameras:
  street:
    sources: [{{url: "synthetic://?width=640&height=360&fps=10&duration=600"}}]
    lines:
      middle: {{points: [[0.05, 0.5], [0.95, 0.5]]}}
    zones:
      road:
        polygon: [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
        calibration: {{distances: [64, 36, 64, 36]}}
        speed_limit: 0.5
"""


@pytest.fixture(scope="module")
def street(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("street")
    port = free_port()
    config = root / "vigil.yaml"
    config.write_text(CONFIG.format(data=root / "data", port=port))
    with serve_with_admin(root, config, port) as served:
        yield served


@pytest.fixture
def street_pages(browser: Any, street: Server) -> Iterator[Pages]:
    yield from checked_pages(browser, street)


def rows(page: Any) -> list[list[str]]:
    cells = page.locator("#counts-now tbody tr").evaluate_all(
        "trs => trs.map(tr => [...tr.cells].map(td => td.textContent))"
    )
    return [list(r) for r in cells]


def test_now_table_per_rule_and_class_with_speeds(street_pages: Pages) -> None:
    page = street_pages.open()
    login(page, "ada")
    page.goto("/#/counts?camera=street&period=hour")
    page.locator("#counts-chart").wait_for()

    def measured() -> bool:
        figures = {(r[0], r[1], r[2]) for r in rows(page)}
        return ("road", "motion", "mean speed (km/h)") in figures and (
            "middle",
            "motion",
            "crossings A→B",
        ) in figures

    wait_until(measured, 60, "the live table shows per-class crossings and speeds")
    table = rows(page)
    assert ("road", "all", "speeding events") in {(r[0], r[1], r[2]) for r in table}
    speed = [float(r[3]) for r in table if r[:3] == ["road", "motion", "mean speed (km/h)"]]
    assert speed[0] > 0.5
    page.locator("#counts-rule").select_option("road")
    wait_until(lambda: {r[0] for r in rows(page)} == {"road"}, 15, "the rule filter")
    page.locator("#counts-class").select_option("car")  # nothing but motion blobs here
    page.locator('#counts-csv[href*="label=car"]').wait_for(state="attached")
    page.locator("#counts-now p.muted").wait_for()  # no live counters for that class
