"""Camera names at their limit, on SQLite and on a real PostgreSQL: an event id
(``<camera>-<start>-<track>``) of a 64-character camera is longer than 64 characters and
must be stored, one by one and in batches; a longer camera name is refused at load. Zone and
line names likewise: the longest one's counts are stored, a longer one is refused at load
naming the camera, the rule and the limit, and so is an empty one. And the cameras'
switches, kept for the next start."""

from __future__ import annotations

import dataclasses

import pytest

from vigil.config.loader import parse_config
from vigil.config.models import CAMERA_NAME_MAX, RULE_NAME_MAX, VigilConfig
from vigil.errors import ConfigError
from vigil.events.lifecycle import event_id
from vigil.store import CameraRepo, Database, EventFilter, EventRepo
from vigil.store.models import CountRow
from vigil.store.repo import CountKey, CountRepo, EventWrite
from vigil.types import Event, EventState

LONGEST = "c" * CAMERA_NAME_MAX
#: Far in the future, with milliseconds, and the largest track id the (32-bit) column holds.
START = 9_999_999_999.999
TRACK = 2**31 - 1


def long_event(camera: str, track: int = TRACK) -> Event:
    return Event(
        id=event_id(camera, START, track), camera_id=camera, label="person", class_id=0,
        track_id=track, start=START, end=None, state=EventState.START, live=True,
    )  # fmt: skip


def test_the_longest_event_id_fits_the_column() -> None:
    from vigil.store.models import EventRow

    longest = event_id(LONGEST, START, TRACK)
    assert len(longest) > 64, "the case that PostgreSQL's VARCHAR(64) refused"
    assert len(longest) <= EventRow.__table__.c.id.type.length  # type: ignore[attr-defined]


def test_an_event_of_the_longest_camera_name_is_stored(db: Database) -> None:
    event = long_event(LONGEST)
    with db.session() as s:
        CameraRepo(s).ensure(LONGEST)
        EventRepo(s).upsert(event)
    end = dataclasses.replace(event, state=EventState.END, end=START + 5)
    with db.session() as s:
        EventRepo(s).upsert(end)
    with db.session() as s:
        row = EventRepo(s).get(event.id)
        assert row is not None
        assert (row.camera, row.state, row.id) == (LONGEST, "end", event.id)


def test_a_batch_of_events_of_the_longest_camera_name_is_stored(db: Database) -> None:
    events = [long_event(LONGEST, TRACK - i) for i in range(3)]
    with db.session() as s:
        assert EventRepo(s).upsert_many([EventWrite(e) for e in events]) == 3
    with db.session() as s:
        stored = EventRepo(s).list(EventFilter(camera=LONGEST)).items
        assert sorted(r.id for r in stored) == sorted(e.id for e in events)


def test_a_camera_name_over_the_limit_is_refused_at_load() -> None:
    name = "c" * (CAMERA_NAME_MAX + 1)
    text = f"cameras:\n  {name}:\n    sources: [{{url: 'synthetic://'}}]\n"
    with pytest.raises(ConfigError, match=rf"{CAMERA_NAME_MAX + 1} characters long.*at most "
                       rf"{CAMERA_NAME_MAX}"):  # fmt: skip
        parse_config(text, source="cameras.yaml")
    ok = f"cameras:\n  {LONGEST}:\n    sources: [{{url: 'synthetic://'}}]\n"
    assert list(parse_config(ok).cameras) == [LONGEST]


def test_counts_of_the_longest_rule_name_are_stored(db: Database) -> None:
    rule = "r" * RULE_NAME_MAX
    assert CountRow.__table__.c.rule.type.length >= RULE_NAME_MAX  # type: ignore[attr-defined]
    with db.session() as s:
        CountRepo(s).increment(CountKey(LONGEST, rule, "zone", "person", "enter"), START)
    with db.session() as s:
        (row,) = s.query(CountRow).all()
        assert (row.camera, row.rule, row.count) == (LONGEST, rule, 1)


RULES = """
zones:
  {top}: {{polygon: [[0, 0], [1, 0], [1, 1]]}}
cameras:
  door:
    sources: [{{url: 'synthetic://'}}]
    zones:
      {zone}: {{polygon: [[0, 0], [1, 0], [1, 1]]}}
    lines:
      {line}: {{points: [[0, 0.5], [1, 0.5]]}}
"""


@pytest.mark.parametrize(("where", "kind", "names"), [
    ("camera 'door'", "zone", {"zone": "z" * (RULE_NAME_MAX + 1)}),
    ("camera 'door'", "line", {"line": "l" * (RULE_NAME_MAX + 1)}),
    ("the top-level rules", "zone", {"top": "t" * (RULE_NAME_MAX + 1)}),
])  # fmt: skip
def test_a_rule_name_over_the_limit_is_refused_at_load(
    where: str, kind: str, names: dict[str, str]
) -> None:
    text = RULES.format(**{"top": "all", "zone": "porch", "line": "gate", **names})
    (name,) = names.values()
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="cameras.yaml")
    message = str(caught.value)
    assert f"{where}: {kind} {name!r} is {RULE_NAME_MAX + 1} characters long" in message
    assert f"at most {RULE_NAME_MAX}" in message
    longest = "n" * RULE_NAME_MAX
    ok = parse_config(RULES.format(top=longest, zone=longest, line=longest))
    assert list(ok.camera("door").zones) == [longest]


@pytest.mark.parametrize(("where", "kind", "names"), [
    ("camera 'door'", "zone", {"zone": "''"}),
    ("camera 'door'", "line", {"line": "'   '"}),
    ("the top-level rules", "zone", {"top": "''"}),
])  # fmt: skip
def test_an_empty_rule_name_is_refused_at_load(
    where: str, kind: str, names: dict[str, str]
) -> None:
    text = RULES.format(**{"top": "all", "zone": "porch", "line": "gate", **names})
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="cameras.yaml")
    message = str(caught.value)
    assert f"{where}: a {kind} has an empty name" in message
    assert f"give it a name of 1 to {RULE_NAME_MAX} characters" in message


def test_an_empty_rule_name_is_refused_in_code() -> None:
    camera = {"sources": [{"url": "synthetic://"}], "lines": {"": {"points": [[0, 0], [1, 1]]}}}
    with pytest.raises(ValueError, match="camera 'door': a line has an empty name"):
        VigilConfig.model_validate({"cameras": {"door": camera}})


def test_switches_are_kept(db: Database) -> None:
    with db.session() as s:
        repo = CameraRepo(s)
        assert repo.switches("door") == {}, "an unknown camera: every switch on"
        repo.ensure("door")
        assert repo.switches("door") == {}, "never switched: on"
        repo.set_switch("door", "detection", False)
    with db.session() as s:
        assert CameraRepo(s).switches("door") == {"detection": False}
        CameraRepo(s).set_switch("door", "recording", False)
        CameraRepo(s).set_switch("door", "detection", True)
    with db.session() as s:
        assert CameraRepo(s).switches("door") == {"detection": True, "recording": False}
        with pytest.raises(ValueError, match="unknown switch"):
            CameraRepo(s).set_switch("door", "lights", False)
