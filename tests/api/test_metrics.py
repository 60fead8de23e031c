"""``GET /metrics`` through the API: names, units, types, the caller's scope, and promtool.

The live scrape of a running ``vigil serve`` is ``tests/runtime/test_metrics_scrape.py``.
"""

from __future__ import annotations

import dataclasses

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import T0, Api
from tests.promtool import promtool_complaints
from vigil import __version__
from vigil.record.layout import segment_path
from vigil.record.quarantine import QUARANTINE
from vigil.runtime.telemetry import DeliveryHealth, RuntimeMetrics
from vigil.store import Role


def _families(body: str) -> dict[str, tuple[str, dict[tuple[tuple[str, str], ...], float]]]:
    """``{family: (type, {sorted labels of a sample: value})}``, samples named as families
    (counters' ``_total`` samples under their family name, without the suffix)."""
    out: dict[str, tuple[str, dict[tuple[tuple[str, str], ...], float]]] = {}
    for family in text_string_to_metric_families(body):
        samples = {tuple(sorted(s.labels.items())): s.value for s in family.samples
                   if not s.name.endswith("_created")}  # fmt: skip
        out[family.name] = (family.type, samples)
    return out


def test_metrics_names_units_types_and_scope(api: Api) -> None:
    api.add_segment("front", T0)
    reply = api.login("val", Role.VIEWER, cameras=["front"]).get("/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    body = reply.text
    assert 'vigil_camera_decode_fps{camera="front"} 15.0' in body
    assert 'vigil_camera_inference_seconds{camera="front"} 0.014' in body  # 14 ms
    assert "inference_ms" not in body
    assert 'vigil_camera_queue_depth{camera="front"} 1.0' in body
    assert 'vigil_storage_used_bytes{camera="front"}' in body
    assert 'camera="back"' not in body  # outside the caller's scope
    families = _families(body)
    assert families["vigil_camera_skipped_frames"] == ("counter", {(("camera", "front"),): 3.0})
    for name in ("process_cpu_seconds", "process_resident_memory_bytes", "python_info",
                 "vigil_storage_free_bytes", "vigil_storage_total_bytes"):  # fmt: skip
        assert name in families, name
    assert families["vigil_build_info"] == ("gauge", {(("version", __version__),): 1.0})
    assert "vigil_events" not in families  # the static runtime has no counters
    assert promtool_complaints(reply.content) == ""


def test_runtime_counters_follow_the_callers_scope(api: Api) -> None:
    counters = RuntimeMetrics(
        started=T0, events={("front", "person"): 4, ("back", "car"): 2},
        crossings={("front", "gate", "a_to_b", "person"): 3,
                   ("back", "gate", "b_to_a", "car"): 1},
        reconnects={("front", "detect"): 1, ("front", "record"): 0, ("back", "detect"): 5},
        mqtt=DeliveryHealth(True, 10, 1, 0), webhooks=DeliveryHealth(None, 7, 2, 3),
        moves={("front", "failover"): 1, ("front", "rebalanced"): 2, ("back", "failover"): 3},
    )  # fmt: skip
    api.runtime.metrics = lambda: counters  # type: ignore[attr-defined]
    reply = api.login("val", Role.VIEWER, cameras=["front"]).get("/metrics")
    assert 'camera="back"' not in reply.text
    families = _families(reply.text)
    assert families["vigil_events"] == (
        "counter",
        {(("camera", "front"), ("label", "person")): 4.0},
    )
    assert families["vigil_line_crossings"][1] == {
        (("camera", "front"), ("direction", "a_to_b"), ("label", "person"), ("line", "gate")):
            3.0}  # fmt: skip
    assert families["vigil_source_reconnects"][1] == {
        (("camera", "front"), ("role", "detect")): 1.0,
        (("camera", "front"), ("role", "record")): 0.0,
    }
    assert families["vigil_cluster_camera_moves"] == (
        "counter",
        {(("camera", "front"), ("kind", "failover")): 1.0,
         (("camera", "front"), ("kind", "rebalanced")): 2.0},
    )  # fmt: skip
    assert families["vigil_mqtt_connected"][1] == {(): 1.0}
    assert families["vigil_mqtt_messages"] == (
        "counter",
        {(("outcome", "delivered"),): 10.0, (("outcome", "failed"),): 1.0},
    )
    assert families["vigil_webhook_deliveries"][1] == {
        (("outcome", "delivered"),): 7.0,
        (("outcome", "failed"),): 2.0,
    }
    assert families["vigil_webhook_queued_deliveries"][1] == {(): 3.0}
    assert "vigil_webhook_connected" not in families  # webhooks have no standing connection
    assert families["vigil_uptime_seconds"][1][()] > 0
    assert promtool_complaints(reply.content) == ""


@pytest.mark.parametrize("supervising", [True, False])
def test_a_cluster_server_says_whether_it_supervises(api: Api, supervising: bool) -> None:
    counters = RuntimeMetrics(started=T0, supervising=supervising)
    api.runtime.metrics = lambda: counters  # type: ignore[attr-defined]
    reply = api.login("val", Role.VIEWER, cameras=["front"]).get("/metrics")
    families = _families(reply.text)
    assert families["vigil_cluster_supervising"] == ("gauge", {(): float(supervising)})
    assert promtool_complaints(reply.content) == ""


def test_a_single_host_has_no_supervision_gauge(api: Api) -> None:
    api.runtime.metrics = lambda: RuntimeMetrics(started=T0)  # type: ignore[attr-defined]
    reply = api.login("val", Role.VIEWER, cameras=["front"]).get("/metrics")
    assert "vigil_cluster_supervising" not in reply.text


def test_segments_given_up_are_counted_in_metrics_and_health(api: Api) -> None:
    runtime = api.runtime
    front, back = (s for s in runtime.cameras() if s.name == "front"), runtime.cameras()[0]
    runtime.set_status(
        dataclasses.replace(next(front), recording="recording", segments_unindexed=3)
    )
    runtime.set_status(dataclasses.replace(back, recording="recording"))
    reply = api.login("val", Role.VIEWER).get("/metrics")
    assert reply.status_code == 200
    families = _families(reply.text)
    assert families["vigil_camera_segments_unindexed"] == (
        "gauge",  # it goes down once a sweep indexes them
        {(("camera", "front"),): 3.0, (("camera", "back"),): 0.0},
    )
    assert promtool_complaints(reply.content) == ""
    health = api.client().get("/api/health").json()
    assert health["segments_unindexed"] == 3


def test_quarantined_files_are_counted_in_metrics_and_health(api: Api) -> None:
    """Files that no longer play (``vigil.record.quarantine``), per camera and in the
    caller's scope; ``/api/health`` gives the totals (no camera name)."""
    for camera, start, size in (("front", T0, 100), ("front", T0 + 10, 50), ("back", T0, 7)):
        path = segment_path(api.data_dir / QUARANTINE, camera, start)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\x00" * size)
    reply = api.login("val", Role.VIEWER).get("/metrics")
    families = _families(reply.text)
    assert families["vigil_quarantine_files"] == (
        "gauge",
        {(("camera", "back"),): 1.0, (("camera", "front"),): 2.0},
    )
    assert families["vigil_quarantine_bytes"] == (
        "gauge",
        {(("camera", "back"),): 7.0, (("camera", "front"),): 150.0},
    )
    assert promtool_complaints(reply.content) == ""
    scoped = _families(api.login("op", Role.VIEWER, cameras=["front"]).get("/metrics").text)
    assert scoped["vigil_quarantine_bytes"][1] == {(("camera", "front"),): 150.0}
    health = api.client().get("/api/health").json()
    assert (health["quarantine_files"], health["quarantine_bytes"]) == (3, 157)


def test_promtool_check_catches_what_it_must() -> None:
    """The check above means something: promtool refuses the names Vigil used to have."""
    old = (b"# HELP vigil_camera_inference_ms mean detector time per frame, ms\n"
           b"# TYPE vigil_camera_inference_ms gauge\n"
           b'vigil_camera_inference_ms{camera="front"} 14.0\n'
           b"# HELP vigil_camera_skipped_frames frames skipped\n"
           b"# TYPE vigil_camera_skipped_frames counter\n"
           b'vigil_camera_skipped_frames{camera="front"} 3.0\n')  # fmt: skip
    said = promtool_complaints(old)
    assert "abbreviated units" in said
    assert "_total" in said
