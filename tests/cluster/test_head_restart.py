"""A head's ``vigil serve`` killed with ``-9`` and started again: the cameras record on.

A real Ray cluster (head + two worker nodes of one camera slot each), a real PostgreSQL, two
RTSP cameras, ``vigil serve --cluster ADDRESS`` as real processes. The camera group actors
are detached and keyed (``vigil.cluster.group``): the head that starts after the kill adopts
them (the same Ray actors, no recording gap, no event closed); one started with a camera's
settings changed replaces only that camera's group; a clean stop ends them all.

The tests run in order on one cluster: each is a step of one story.
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import text

from tests.alerts.alert_servers import Broker, Subscriber, free_port
from tests.cluster.conftest import SEGMENT_S, lock_holder, lock_holders, start_relay
from tests.conftest import require_file
from tests.ray_cluster import LocalCluster, local_cluster
from tests.rtsp_relay import require_tools
from tests.runtime.serve_process import PASSWORD, ServeProcess
from tests.store.conftest import PgServer, new_pg_database
from vigil.cluster import NAMESPACE
from vigil.cluster.leader import STANDBY_LOCK
from vigil.paths import shared_data_dir
from vigil.store import Database, EventFilter, EventRepo, SegmentRepo

CAMERAS = ("cam0", "cam1")
#: The settings head-3 (and the replicas after it) run cam1 with: another group key.
CHANGED = {"cam1": 4}
#: Within how long a replica takes over from a head killed (the lock is tried every
#: ``cluster.takeover_interval``, 2 s; the rest is the machine's load).
TAKEOVER_S = 60


def config_text(
    data: Path, port: int, database_url: str, urls: list[str], *, fps: dict[str, int] | None = None,
    mqtt_port: int | None = None,
) -> str:  # fmt: skip
    """Two motion cameras recording in short segments; ``fps``: a camera's analysis rate
    other than 5 (another setting: another group key); ``mqtt_port``: the broker the
    supervising server publishes to."""
    lines = {"across": {"points": [[0.05, 0.5], [0.95, 0.5]]}}
    cameras = {
        name: {"sources": [{"url": url, "options": {"rtsp_transport": "udp"}}],
               "detect": {"model": "motion", "fps": (fps or {}).get(name, 5)}, "lines": lines}
        for name, url in zip(CAMERAS, urls, strict=True)
    }  # fmt: skip
    return yaml.safe_dump({
        "detect": {"model": "motion", "fps": 5},
        "record": {"mode": "continuous", "segment_seconds": SEGMENT_S},
        "data_dir": str(data),
        "database_url": database_url,
        "server": {"host": "127.0.0.1", "port": port, "secure_cookies": False},
        "cluster": {"call_timeout": 20.0},
        "cameras": cameras,
        **({} if mqtt_port is None else
           {"mqtt": {"host": "127.0.0.1", "port": mqtt_port, "discovery": False}}),
    })  # fmt: skip


def start_serve(folder: Path, text: str, port: int, address: str, *extra: str) -> ServeProcess:
    """``vigil serve --config FILE --cluster ADDRESS [extra]``, its output in ``serve.log``
    (a new log per start, so that each start's lines can be read alone)."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "vigil.yaml"
    config.write_text(text)
    serve = ServeProcess.__new__(ServeProcess)
    serve.folder, serve.port, serve.data, serve.db_url = folder, port, folder / "data", None
    serve.log = folder / "serve.log"
    with serve.log.open("wb") as out:
        serve.process = subprocess.Popen(
            [sys.executable, "-m", "vigil.cli", "serve", "--config", str(config),
             "--cluster", address, *extra],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    return serve


def login(base_url: str, password: str, name: str = "guard") -> httpx.Response:
    with httpx.Client(base_url=base_url, timeout=30) as session:
        return session.post("/api/login", json={"name": name, "password": password})


@contextmanager
def client(base_url: str) -> Iterator[httpx.Client]:
    """A client logged in as the admin an earlier start created."""
    with httpx.Client(base_url=base_url, timeout=30) as session:
        reply = session.post("/api/login", json={"name": "root", "password": PASSWORD})
        assert reply.status_code == 200, reply.text
        session.headers["X-CSRF-Token"] = reply.json()["csrf_token"]
        yield session


def camera_actors(address: str) -> dict[str, str]:
    """Name -> Ray actor id of every camera actor alive in Vigil's namespace."""
    import ray

    if not ray.is_initialized():
        ray.init(address=address, namespace=NAMESPACE, log_to_driver=False)
    found = {}
    for entry in ray.util.list_named_actors(all_namespaces=True):
        name = str(entry.get("name", ""))
        if entry.get("namespace") == NAMESPACE and name.startswith("vigil-camera:"):
            try:
                found[name] = ray.get_actor(name, namespace=NAMESPACE)._actor_id.hex()
            except ValueError:  # ended meanwhile
                continue
    return found


def all_actors(address: str) -> list[str]:
    import ray

    camera_actors(address)  # connected
    return sorted(str(a["name"]) for a in ray.util.list_named_actors(all_namespaces=True)
                  if a.get("namespace") == NAMESPACE)  # fmt: skip


@dataclass
class Story:
    root: Path
    cluster: LocalCluster
    db: Database
    database_url: str
    urls: list[str]
    port: int
    broker: Broker
    serve: ServeProcess | None = None
    others: list[ServeProcess] = field(default_factory=list)
    #: What the steps hand on to the next ones.
    actors: dict[str, str] = field(default_factory=dict)
    killed_at: float = 0.0
    up_at: float = 0.0
    replica: ServeProcess | None = None

    def start(self, name: str, *extra: str, fps: dict[str, int] | None = None,
              port: int | None = None, data: str = "head") -> ServeProcess:  # fmt: skip
        text = config_text(self.root / data / "data", port or self.port, self.database_url,
                           self.urls, fps=fps, mqtt_port=self.broker.port)  # fmt: skip
        serve = start_serve(self.root / name, text, port or self.port, self.cluster.address,
                            *extra)  # fmt: skip
        self.others.append(serve)
        return serve

    def segments(self, camera: str) -> list[Any]:
        with self.db.session() as session:
            return sorted(SegmentRepo(session).list(camera, limit=100_000), key=lambda r: r.start)

    def open_events(self) -> list[str]:
        with self.db.session() as session:
            rows = EventRepo(session).list(EventFilter(), limit=10_000).items
        return [r.id for r in rows if r.end is None]


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory, pg_server: PgServer) -> Iterator[Story]:
    require_tools("rtsp-server-perl", "ffmpeg")
    clips = require_file(shared_data_dir() / "clips")
    root = tmp_path_factory.mktemp("head-restart")
    url = new_pg_database(pg_server)
    relay, mounts = start_relay(clips, len(CAMERAS))
    db = Database(url)
    broker: Broker | None = None
    try:
        (root / "mosquitto").mkdir()
        broker = Broker(root / "mosquitto")
        with local_cluster(root / "nodes", workers=2, slots=1) as cluster:
            story = Story(root, cluster, db, url, [m.url for m in mounts], free_port(), broker)
            try:
                yield story
            finally:
                for serve in story.others:
                    serve.stop()
                import ray

                if ray.is_initialized():
                    ray.shutdown()
    finally:
        if broker is not None:
            broker.stop()
        db.close()
        for mount in mounts:
            mount.unpublish()
        relay.stop()


def _online(base_url: str) -> bool:
    try:
        with client(base_url) as admin:
            cams = {c["name"]: c for c in admin.get("/api/cameras").json()}
    except httpx.HTTPError:
        return False
    return all(cams[n]["online"] and cams[n]["node"] for n in CAMERAS)


def test_first_head_places_the_cameras_as_detached_keyed_groups(story: Story) -> None:
    serve = story.serve = story.start("head-1")
    serve.wait_for(serve.api_up, 300, "the API did not come up")
    serve.admin().close()  # creates the admin (first-run setup)
    serve.wait_for(lambda: _online(serve.base_url), 300, "the cameras did not come online")
    serve.wait_for(lambda: all(len(story.segments(c)) >= 2 for c in CAMERAS), 180,
                   "the cameras recorded no segments")  # fmt: skip
    story.actors = camera_actors(story.cluster.address)
    # One slot per node: one group per camera, each named with its key.
    assert len(story.actors) == 2, story.actors
    assert all(name.count(":") == 2 for name in story.actors), story.actors


def test_a_head_killed_leaves_the_cameras_recording(story: Story) -> None:
    assert story.serve is not None
    story.killed_at = time.time()
    story.serve.process.kill()  # kill -9: no stop of any kind
    story.serve.process.wait()
    # Nobody drains them now, and still they record: segments keep coming.
    deadline = time.monotonic() + 120
    while not all(story.segments(c)[-1].start > story.killed_at + SEGMENT_S for c in CAMERAS):
        assert time.monotonic() < deadline, "the cameras stopped recording with their head"
        time.sleep(0.5)
    assert camera_actors(story.cluster.address) == story.actors, "the same actors, alive"


def test_the_next_head_adopts_them_with_no_gap_and_no_event_closed(story: Story) -> None:
    serve = story.serve = story.start("head-2")
    serve.wait_for(serve.api_up, 300, "the API did not come up")
    serve.wait_for(lambda: _online(serve.base_url), 300, "the cameras did not come online")
    story.up_at = time.time()
    assert "adopting vigil-camera:" in serve.output
    assert camera_actors(story.cluster.address) == story.actors, "no new or duplicate actor"
    # Recording went on through the head's absence: between a little before the kill and
    # a segment after the new head came up, no gap of a segment's length.
    serve.wait_for(lambda: all(story.segments(c)[-1].start > story.up_at for c in CAMERAS),
                   120, "no segment after the new head came up")  # fmt: skip
    for camera in CAMERAS:
        rows = [r for r in story.segments(camera) if r.end > story.killed_at - 2 * SEGMENT_S]
        gaps = [b.start - a.end for a, b in itertools.pairwise(rows)]
        print(
            f"\n{camera}: head down {story.up_at - story.killed_at:.1f} s (kill to cameras "
            f"online in the new head), largest gap between segments {max(gaps):.2f} s"
        )
        assert max(gaps) < SEGMENT_S, f"{camera}: a recording gap of {max(gaps):.1f} s"
        assert rows[0].start < story.killed_at < story.up_at < rows[-1].start
    # The events open when the head died are left to their cameras, which run on: the
    # new head closes none (tests/cluster/test_supervisor_cluster.py checks the rows).
    assert "left open" not in serve.output


def test_a_head_with_a_camera_s_settings_changed_replaces_that_camera_s_group_only(
    story: Story,
) -> None:
    assert story.serve is not None
    story.serve.process.kill()
    story.serve.process.wait()
    serve = story.serve = story.start("head-3", fps=CHANGED)
    serve.wait_for(serve.api_up, 300, "the API did not come up")
    serve.wait_for(lambda: _online(serve.base_url), 300, "the cameras did not come online")
    now = camera_actors(story.cluster.address)
    assert len(now) == 2, f"no duplicate actor: {now}"
    kept = {n: i for n, i in story.actors.items() if n.endswith(":cam0")}
    assert kept, story.actors
    assert set(kept.items()) <= set(now.items()), "cam0's group adopted"
    old_cam1 = next(n for n in story.actors if n.endswith(":cam1"))
    new_cam1 = next(n for n in now if n.endswith(":cam1"))
    assert new_cam1 != old_cam1, "cam1's group made with its new settings"
    assert now[new_cam1] != story.actors[old_cam1]
    story.actors = now


def _peek(address: str, camera: str) -> Any:
    """What ``camera``'s actor has in force (``peek``: acknowledging nothing)."""
    import ray

    name = next(n for n in camera_actors(address) if n.endswith(f":{camera}"))
    group = ray.get_actor(name, namespace=NAMESPACE)
    return ray.get(group.call.remote(camera, "peek", 10**9), timeout=60)


def test_an_api_replica_serves_the_head_s_cameras(story: Story) -> None:
    """``vigil serve --replica`` on another port, with a data dir of its own: it lists the
    cameras where they run, starting and ending none."""
    # The head's configuration (head-3's), on another port: a replica that may take over.
    replica = story.replica = story.start("replica", "--replica", port=free_port(),
                                          fps=CHANGED)  # fmt: skip
    replica.wait_for(replica.api_up, 300, "the replica's API did not come up")
    replica.wait_for(lambda: _online(replica.base_url), 120,
                     "the replica does not show the cameras online")  # fmt: skip
    assert "API replica" in replica.output
    with client(replica.base_url) as admin:
        nodes = sorted(c["node"] for c in admin.get("/api/cameras").json())
        assert nodes == ["node-1", "node-2"]
        frame = admin.get("/api/cameras/cam0/snapshot")
        assert frame.status_code == 200, frame.text
        assert frame.content[:2] == b"\xff\xd8", "a live JPEG from the camera's actor"
        overlay = admin.get("/api/cameras/cam0/overlay")
        assert overlay.status_code == 200, overlay.text
        assert "across" in overlay.json()["lines"], "tracks, rules and counts from the actor"
    assert camera_actors(story.cluster.address) == story.actors, "it started or ended none"


def test_a_rule_edited_through_the_replica_reaches_the_camera_and_stays(story: Story) -> None:
    assert story.replica is not None
    head = story.serve
    assert head is not None
    line = {"points": [[0.1, 0.1], [0.9, 0.9]]}
    with client(story.replica.base_url) as admin:
        rules = admin.get("/api/config/cameras/cam0/rules").json()
        rules["lines"]["from-the-replica"] = line
        reply = admin.put("/api/config/cameras/cam0/rules", json=rules)
        assert reply.status_code == 200, reply.text
    drained = _peek(story.cluster.address, "cam0")
    assert drained.rules is not None
    assert "from-the-replica" in drained.rules[1], "the camera's actor has the new line"

    def head_has_it() -> bool:
        with client(head.base_url) as admin:
            return "from-the-replica" in admin.get("/api/config/cameras/cam0/rules").json()["lines"]

    head.wait_for(head_has_it, 60, "the head did not follow the replica's edit")
    time.sleep(3)  # a dozen of the head's drains: it must not hand the camera its old rules
    assert "from-the-replica" in _peek(story.cluster.address, "cam0").rules[1]
    assert head_has_it()


def test_a_login_lockout_made_on_the_head_holds_on_the_replica(story: Story) -> None:
    assert story.replica is not None
    assert story.serve is not None
    with client(story.serve.base_url) as head:
        made = head.post("/api/users", json={"name": "guard", "role": "viewer",
                                             "password": "guard-password-1"})  # fmt: skip
        assert made.status_code == 201, made.text
    for _ in range(5):  # server.login_max_failures
        assert login(story.serve.base_url, "wrong").status_code == 401
    with httpx.Client(base_url=story.replica.base_url, timeout=30) as other:
        refused = other.post("/api/login", json={"name": "guard",
                                                 "password": "guard-password-1"})  # fmt: skip
    assert refused.status_code == 429, refused.text


def test_a_segment_recorded_on_a_node_plays_through_the_replica(story: Story) -> None:
    assert story.replica is not None
    row = next(r for r in story.segments("cam1") if r.node)
    on_node = story.cluster.nodes[row.node].data_dir / row.path
    assert not (story.replica.data / row.path).exists()
    with client(story.replica.base_url) as admin:
        played = admin.get(f"/api/recordings/{row.id}/media")
    assert played.status_code == 200, played.text
    assert played.content == on_node.read_bytes()


def test_a_replica_s_clean_stop_leaves_the_cameras_running(story: Story) -> None:
    actors = camera_actors(story.cluster.address)
    other = story.start("replica-2", "--replica", port=free_port(), fps=CHANGED)
    other.wait_for(other.api_up, 300, "the second replica's API did not come up")
    media = [n for n in all_actors(story.cluster.address) if n.startswith("vigil-media:")]
    other.process.send_signal(signal.SIGTERM)
    other.process.wait(120)
    assert other.process.returncode == 0, other.output[-4000:]
    assert camera_actors(story.cluster.address) == actors
    assert [n for n in all_actors(story.cluster.address) if n.startswith("vigil-media:")] == media


def test_a_replica_takes_over_from_a_head_killed_and_supervises(story: Story) -> None:
    """The head is killed: the replica takes the supervision lock within the bound, adopts
    the running actors (the same ones), and supervises: a camera group killed afterwards
    comes back (Ray restarts it) and gets from the replica the rules in force (the line
    edited through the replica, which the group's original spec lacks)."""
    import ray

    assert story.serve is not None
    assert story.replica is not None
    replica = story.replica
    actors = camera_actors(story.cluster.address)
    availability = Subscriber(story.broker.port, ["vigil/availability", "vigil/cam0/availability"])
    try:
        assert availability.take("vigil/availability", 30).payload == b"online"  # the head's
        killed = time.monotonic()
        story.serve.process.kill()
        story.serve.process.wait()
        # The head's Last Will; then the replica, which publishes in its place.
        assert availability.take("vigil/availability", 30).payload == b"offline"
        replica.wait_for(lambda: "supervising the cluster's" in replica.output, TAKEOVER_S,
                         "the replica did not take over")  # fmt: skip
        took = time.monotonic() - killed
        print(f"\ntake-over: {took:.1f} s after the kill")
        assert camera_actors(story.cluster.address) == actors, "adopted, not started again"
        assert availability.take("vigil/availability", 60).payload == b"online"
        # Announced offline first, then online as the camera is: the replica's own state.
        deadline = time.monotonic() + 60
        while availability.take("vigil/cam0/availability", 60).payload != b"online":
            assert time.monotonic() < deadline, "cam0 was not announced online"
    finally:
        availability.close()
    replica.wait_for(lambda: _online(replica.base_url), 120, "cameras offline after take-over")
    # A camera killed now is restarted, and this server hands it what is in force.
    name = next(n for n in actors if n.endswith(":cam0"))
    before = _peek(story.cluster.address, "cam0").incarnation
    ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=False)

    def handed() -> bool:
        try:
            drained = _peek(story.cluster.address, "cam0")
        except Exception:  # restarting
            return False
        return (drained.incarnation != before and drained.rules is not None
                and "from-the-replica" in drained.rules[1])  # fmt: skip

    replica.wait_for(handed, 180, "the restarted camera did not get the rules in force")
    replica.wait_for(lambda: _online(replica.base_url), 120, "cam0 did not come back online")
    story.serve = replica  # the server that supervises now


def test_a_supervisor_whose_lock_connection_is_cut_steps_down_and_takes_over_again(
    story: Story,
) -> None:
    """The supervision lock's connection cut on the server's side (``pg_terminate_backend``,
    as a database restart does): the supervisor steps down at once, ending no camera, then
    takes the lock again on a new connection (nobody else stands by) and adopts the same
    actors; its metrics and cluster status say it supervises."""
    serve = story.serve
    assert serve is not None
    serve.wait_for(lambda: "took over the cluster's supervision" in serve.output, TAKEOVER_S,
                   "the take-over did not finish")  # fmt: skip
    actors = camera_actors(story.cluster.address)
    pid = lock_holder(story.db)
    assert pid is not None, "nobody holds the supervision lock"
    took = serve.output.count("took over the cluster's supervision")
    with story.db.engine.connect() as connection:
        assert connection.execute(text("SELECT pg_terminate_backend(:pid)"),
                                  {"pid": pid}).scalar()  # fmt: skip
    serve.wait_for(lambda: "stepping down" in serve.output, 60, "the supervisor did not step down")
    serve.wait_for(lambda: serve.output.count("took over the cluster's supervision") > took,
                   TAKEOVER_S, "the lock was not taken again")  # fmt: skip
    assert lock_holder(story.db) not in (None, pid), "held again, on a new connection"
    assert camera_actors(story.cluster.address) == actors, "the same actors: none ended"
    serve.wait_for(lambda: _online(serve.base_url), 120, "cameras offline after the re-take")
    with client(serve.base_url) as admin:
        assert "vigil_cluster_supervising 1.0" in admin.get("/metrics").text
        assert admin.get("/api/cluster").json()["cluster"]["supervising"] is True


def test_a_supervisor_s_clean_stop_hands_the_cameras_to_a_replica_standing_by(
    story: Story,
) -> None:
    """SIGTERM to the supervisor while a replica stands by: it hands the supervision over
    (``cluster.hand_over``) instead of ending the cameras, which record on with the same
    actors; the replica takes over and closes no event. Before, the stop ended every camera
    (offline, events closed) and the replica started them again."""
    serve = story.serve
    assert serve is not None
    actors = camera_actors(story.cluster.address)
    replica = story.start("replica-3", "--replica", port=free_port(), fps=CHANGED)
    replica.wait_for(replica.api_up, 300, "the replica's API did not come up")
    replica.wait_for(lambda: bool(lock_holders(story.db, STANDBY_LOCK)), 60,
                     "the replica does not stand by")  # fmt: skip
    stopped = time.time()
    serve.process.send_signal(signal.SIGTERM)
    serve.process.wait(120)
    assert serve.process.returncode == 0, serve.output[-4000:]
    assert "handing the cluster's supervision over" in serve.output, serve.output[-4000:]
    replica.wait_for(lambda: "took over the cluster's supervision" in replica.output, TAKEOVER_S,
                     "the replica did not take over")  # fmt: skip
    print(f"\nhand-over: the replica supervises {time.time() - stopped:.1f} s after the SIGTERM")
    assert camera_actors(story.cluster.address) == actors, "the cameras were ended"
    replica.wait_for(lambda: _online(replica.base_url), 120, "cameras offline after hand-over")
    recorded = lambda: all(story.segments(c)[-1].start > stopped + SEGMENT_S for c in CAMERAS)  # noqa: E731
    replica.wait_for(recorded, 120, "no segment after the hand-over")
    for camera in CAMERAS:
        rows = [r for r in story.segments(camera) if r.end > stopped - 2 * SEGMENT_S]
        gaps = [b.start - a.end for a, b in itertools.pairwise(rows)]
        print(f"\n{camera}: largest gap between segments across the hand-over {max(gaps):.2f} s")
        assert max(gaps) < SEGMENT_S, f"{camera}: a recording gap of {max(gaps):.1f} s"
    story.serve = replica  # the server that supervises now


def _events_since(db: Database, since: float) -> list[str]:
    with db.session() as session:
        rows = EventRepo(session).list(EventFilter(), limit=10_000).items
    return [r.id for r in rows if r.start > since]


def test_an_event_drained_while_the_broker_is_down_reaches_it_through_the_next_head(
    story: Story,
) -> None:
    """The broker down: the supervisor drains the cameras' events, and MQTT holds them. It
    is killed (``-9``) before the broker comes back; the next head, with the broker up,
    publishes them: the start of an event the dead one had drained arrives."""
    serve = story.serve
    assert serve is not None
    story.broker.stop()
    stopped = time.time()
    serve.wait_for(lambda: bool(_events_since(story.db, stopped)), 300,
                   "no event began while the broker was down")  # fmt: skip
    time.sleep(3.0)  # a dozen drains: the supervisor has drained it
    began = _events_since(story.db, stopped)
    serve.process.kill()
    serve.process.wait()
    story.broker.start()
    events = Subscriber(story.broker.port, ["vigil/events"])
    try:
        head = story.serve = story.start("head-4", fps=CHANGED)
        head.wait_for(head.api_up, 300, "the API did not come up")
        starts: set[str] = set()
        deadline = time.monotonic() + 300
        while not starts & set(began):
            assert time.monotonic() < deadline, f"none of {began} started on MQTT: {starts}"
            message = json.loads(events.take("vigil/events", 300).payload)
            if message["state"] == "start":
                starts.add(message["id"])
    finally:
        events.close()
    print(f"\nstarted on MQTT after the hand-over: {sorted(starts & set(began))} of {began}")


def test_a_clean_stop_ends_every_actor_and_closes_the_events(story: Story) -> None:
    assert story.serve is not None
    story.serve.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 120
    while story.serve.process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert story.serve.process.returncode == 0, story.serve.output[-4000:]
    assert story.open_events() == [], "events left open"

    def gone() -> bool:
        return all_actors(story.cluster.address) == []

    deadline = time.monotonic() + 60
    while not gone():
        assert time.monotonic() < deadline, f"left: {all_actors(story.cluster.address)}"
        time.sleep(0.5)
