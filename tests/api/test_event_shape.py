"""One event shape across REST, WebSocket, MQTT and webhooks, and the review workflow."""

from __future__ import annotations

import json

from tests.api.conftest import T0, Api
from tests.api.test_events import add_event
from vigil.events.schema import EventPayload
from vigil.events.sinks import event_to_dict
from vigil.store import AuditLog, EventRepo, Role
from vigil.types import Event, EventState, Snapshot


def test_rest_events_have_the_shape_mqtt_and_webhooks_send(api: Api) -> None:
    live = Event("e1", "front", "person", 0, 7, T0, T0 + 5, EventState.END, live=True,
                 zones=["door"], zones_now=["door"], lines=["gate"], top_score=0.9,
                 snapshot=Snapshot(1, T0 + 1, (10.0, 20.0, 50.0, 60.0), 223.0,
                                   frame_size=(100, 100)))  # fmt: skip
    with api.db.session() as session:
        EventRepo(session).upsert(live, snapshot_path="snapshots/front/e1.jpg")
    sent = event_to_dict(live)  # what MQTT, webhooks and the WebSocket carry
    served = api.login("val", Role.VIEWER).get("/api/events/e1").json()
    assert set(served) == set(sent) == set(EventPayload.model_fields)
    same = {k: served[k] for k in served if k not in ("has_snapshot", "has_clip")}
    assert same == {k: sent[k] for k in same}
    assert served["box"] == [0.1, 0.2, 0.5, 0.6]
    assert isinstance(served["start"], float)
    spec = api.client().get("/api/openapi.json").json()
    assert set(spec["components"]["schemas"]["EventPayload"]["properties"]) == set(sent)
    json.dumps(served)


def test_has_clip_follows_the_recordings(api: Api) -> None:
    add_event(api, "recorded", start=T0)
    add_event(api, "unrecorded", start=T0 + 100)
    api.add_segment("front", T0 + 1, seconds=2.0)
    viewer = api.login("val", Role.VIEWER)
    items = {e["id"]: e["has_clip"] for e in viewer.get("/api/events").json()["items"]}
    assert items == {"recorded": True, "unrecorded": False}


def test_review_workflow(api: Api) -> None:
    for i in range(3):
        add_event(api, f"f{i}", start=T0 + i)
    add_event(api, "b0", "back", start=T0 + 10)
    operator = api.login("otto", Role.OPERATOR, cameras=["front"])
    viewer = api.login("val", Role.VIEWER)
    assert viewer.post("/api/events/f0/review").status_code == 403
    one = operator.post("/api/events/f0/review")
    assert one.json() == {"reviewed": True, "events": ["f0"]}
    many = operator.post("/api/events/review", json={"ids": ["f1", "b0", "nope"]})
    assert many.json() == {"reviewed": True, "events": ["f1"]}  # b0: not otto's camera
    unreviewed = viewer.get("/api/events", params={"reviewed": "false"}).json()["items"]
    assert [e["id"] for e in unreviewed] == ["b0", "f2"]
    reviewed = viewer.get("/api/events", params={"reviewed": "true"}).json()["items"]
    assert [e["id"] for e in reviewed] == ["f1", "f0"]
    assert operator.post("/api/events/f0/review", json={"reviewed": False}).status_code == 200
    assert viewer.get("/api/events/f0").json()["reviewed"] is False
    actions = [(r.actor, r.action) for r in AuditLog(api.db).records()]
    assert actions[-3:] == [("otto", "event.review"), ("otto", "event.review"),
                            ("otto", "event.unreview")]  # fmt: skip
    # The pipeline's later updates of an event keep the user's flag.
    operator.post("/api/events/f2/review")
    with api.db.session() as session:
        row = EventRepo(session).get("f2")
        assert row is not None
        update = Event("f2", "front", "person", 0, 1, row.start, row.start + 9, EventState.END,
                       live=True)  # fmt: skip
        EventRepo(session).upsert(update)
    assert viewer.get("/api/events/f2").json()["reviewed"] is True
