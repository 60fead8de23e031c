"""``vigil serve --config FILE``: run every camera, record, store events, alert; serve the API.

The supervisor (``vigil.runtime.serve.Supervisor``) runs in background threads; the API
(uvicorn) runs in the main thread unless ``--no-api``, in which case the main thread waits for
SIGINT/SIGTERM. Either way shutdown is graceful and the exit status 0: open events are closed,
segments finished, cameras reported offline (``docker stop`` and systemd send SIGTERM).
"""

from __future__ import annotations

import argparse
import logging
import secrets
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vigil.api import ApiSettings
    from vigil.config.models import VigilConfig

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    """Add ``serve`` to the ``vigil`` command line."""
    parser = subparsers.add_parser(
        "serve", help="run the cameras, recorder, alerts and API",
        description="Runs every configured camera: analysis, recording (stream copy), events "
        "to the database, MQTT and webhooks, and the HTTP API.",
    )  # fmt: skip
    parser.add_argument("--config", metavar="FILE", required=True, help="the YAML configuration")
    parser.add_argument("--no-api", action="store_true",
                        help="run the cameras only, without the HTTP API")  # fmt: skip
    parser.add_argument(
        "--cluster", metavar="ADDRESS",
        help="run the cameras as actors on a Ray cluster (server.backend: ray): 'auto' (the "
        "cluster `ray start` made here, or RAY_ADDRESS), 'local' (start a throw-away one on "
        "this machine), HOST:PORT or ray://HOST:PORT; needs a postgresql:// database_url",
    )  # fmt: skip
    parser.add_argument(
        "--replica", action="store_true",
        help="with --cluster: serve the API only, beside the head (cluster.replica): reach "
        "the head's camera actors, place and stop none of them",
    )  # fmt: skip
    parser.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from vigil.config.loader import load_config

    stop = _StopSignal()  # before anything else: a signal during start-up stops cleanly too
    config = load_config(args.config)
    if args.replica and args.cluster is None and config.server.backend != "ray":
        from vigil.errors import ConfigError

        raise ConfigError("--replica serves the API beside a cluster's head: give the head's "
                          "cluster with --cluster ADDRESS (or server.backend: ray)")  # fmt: skip
    if args.cluster is not None or args.replica:
        config = with_cluster(config, args.cluster or config.cluster.address,
                              replica=args.replica or config.cluster.replica)  # fmt: skip
    return serve(config, api=not args.no_api, stop=stop)


def with_cluster(config: VigilConfig, address: str, *, replica: bool = False) -> VigilConfig:
    """``config`` with ``server.backend: ray`` on the cluster at ``address`` (``--cluster``),
    as an API replica when ``replica`` (``--replica``)."""
    from pydantic import ValidationError

    from vigil.config.models import ClusterConfig, ServerConfig
    from vigil.errors import ConfigError

    try:
        cluster = ClusterConfig.model_validate({**config.cluster.model_dump(), "address": address,
                                                "replica": replica})  # fmt: skip
        server = ServerConfig.model_validate({**config.server.model_dump(), "backend": "ray",
                                              "worker_processes": "auto"})  # fmt: skip
    except ValidationError as exc:
        messages = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise ConfigError(f"--cluster {address!r}: {messages}") from None
    return config.model_copy(update={"cluster": cluster, "server": server})


def as_replica(config: VigilConfig) -> VigilConfig:
    """An API replica's configuration: MQTT and webhooks left out, since the head publishes
    every event there (a replica sees the events only as the head's drains leave them)."""
    return config.model_copy(update={"mqtt": None, "webhooks": None})


def check_cluster(config: VigilConfig) -> None:
    """Refuse a cluster start that cannot work, before anything is created: SQLite (every
    node writes to the database) or Ray missing (``ModuleNotFoundError``, which the CLI
    turns into the ``cluster`` extra to install). Cameras of different models are fine:
    each node runs a detector actor per model."""
    from vigil.errors import ConfigError
    from vigil.runtime.serve import cluster_database_error
    from vigil.store import database_url_for

    if config.server.backend != "ray":
        return
    if not database_url_for(config).lower().startswith(("postgresql", "postgres:")):
        raise ConfigError(cluster_database_error())
    import ray  # noqa: F401


def serve(
    config: VigilConfig, *, api: bool = True, access_log: bool = True,
    announce: Callable[[str], None] = print, stop: _StopSignal | None = None,
) -> int:  # fmt: skip
    """Run ``config``'s cameras (and the API) until SIGINT or SIGTERM; ``vigil demo`` uses it
    too. ``announce`` gets the lines a person starting the server should read."""
    from vigil.runtime.serve import Supervisor
    from vigil.store import Database, database_url_for

    # From the very start, so that a signal during start-up also ends in a clean stop.
    stop = stop or _StopSignal()
    check_cluster(config)
    from vigil.privacy.redactor import check_person_model

    check_person_model(config)
    lock: Any = None
    replica = False
    if config.server.backend == "ray":
        # Who supervises: whoever holds the lock (vigil.cluster.leader); the others stand by.
        from vigil.cluster.leader import SupervisionLock

        lock = SupervisionLock(database_url_for(config))
        replica = config.cluster.replica or not lock.try_acquire()
        if replica and not config.cluster.replica:
            log.warning("another vigil serve supervises the cluster (it holds the supervision "
                        "lock): serving as an API replica, standing by")  # fmt: skip
    supervising = config  # the head's configuration: what a standby takes over with
    if replica:
        config = as_replica(config)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(database_url_for(config))
    db.migrate()
    clips: Any = None
    if api:
        _load_api()
        # A replica sees no event end to queue a clip for: the head queues them all.
        clips = None if replica else clip_jobs(config, db)
    cluster: Any = None
    if config.server.backend == "ray":
        from vigil.cluster.backend import RayBackend, ReplicaBackend

        cluster = ReplicaBackend if replica else RayBackend
    # On a cluster the clips are queued by whoever supervises: a sink that a step-down
    # takes away with MQTT and webhooks (Supervisor.stop_alerts).
    queued = () if clips is None or cluster is not None else (clips,)
    supervisor = Supervisor(config, db=db, sinks=queued, cluster_backend=cluster)
    if cluster is not None and clips is not None:
        supervisor.start_alerts(config, [clips])
    supervisor.start()
    head: Any = None
    standby: Any = None
    if cluster is not None:
        # After the backend connected to the cluster: media actors on every node.
        from vigil.cluster.head import cluster_head

        head = cluster_head(config, db, replica=replica)
        head.start()
        standby = _standby(supervising, lock, supervisor, head, db)
        stop.install()
    role = " (API replica: the cameras are the head's)" if replica else ""
    announce(f"vigil serve: {len(supervisor.workers)} camera(s){role}, data in "
             f"{config.data_dir}, database {db.display_url}")  # fmt: skip
    try:
        if not api:
            stop.wait(supervisor.wait)
        elif not stop.received:
            token = _setup_token(db)
            if token is not None:
                announce(f"No user exists yet: open {_setup_link(config, token)} to create the "
                         "first administrator (the link works once).")  # fmt: skip
            _run_api(
                config,
                db,
                supervisor,
                setup_token=token,
                access_log=access_log,
                clips=clips,
                head=head,
            )
    finally:
        if standby is not None:
            standby.stop()  # first: no take-over while this process stops
        if head is not None and _hand_over(supervising, lock, supervisor, head):
            lock = None  # released: a standby supervises the cameras from now on
        if head is not None:
            # First, while the backend still holds the cluster connection (its close ends it):
            # the media actors are detached and would outlive this head.
            try:
                head.stop()
            except Exception:  # the cameras must stop whatever happened to the media actors
                log.exception("the cluster's media actors were not all stopped")
        supervisor.stop()
        if lock is not None:
            lock.release()  # after the stop: a standby must not adopt what is being ended
        db.close()
    return 0


def _hand_over(config: VigilConfig, lock: Any, supervisor: Any, head: Any) -> bool:
    """On the clean stop of the supervising process, when an API replica stands by
    (``cluster.hand_over``): step down and let the lock go, so that the replica adopts the
    camera actors, which record on, rather than end them (each camera would be offline and
    then restarted). True when handed over (the lock released); else the stop ends them."""
    if not config.cluster.hand_over or lock is None or not lock.held:
        return False
    if not supervisor.supervising:
        return False
    waiting = lock.standbys()
    if not waiting:
        return False
    log.warning("handing the cluster's supervision over to the %d API replica(s) standing "
                "by: the cameras record on", waiting)  # fmt: skip
    _step_down(supervisor, head)
    lock.release()
    return True


def _step_down(supervisor: Any, head: Any) -> None:
    """Supervise no more: drains and acknowledgements first (another process may drain
    now), then the publishing; the camera actors run on, and this process serves as a
    replica."""
    supervisor.backend.demote()
    head.demote()
    supervisor.stop_alerts()


def _standby(config: VigilConfig, lock: Any, supervisor: Any, head: Any, db: Any) -> Any:
    """The thread that, on a replica, tries the supervision lock until it gets it and then
    takes over (``vigil.cluster.leader.Standby``); on the supervising process, that checks
    the lock's connection and steps down when it broke (and stands by again). ``config``:
    the head's (with MQTT and webhooks)."""
    from vigil.cluster.leader import Standby

    def take_over() -> None:
        # What the head did with the events, this process does now: MQTT, webhooks and
        # the ended events' clips (the API's job workers render them). Before the first
        # drain: what the last supervisor left unacknowledged reaches them too.
        supervisor.start_alerts(config, [clip_jobs(config, db)])
        supervisor.backend.promote()
        head.promote()

    standby = Standby(lock, config.cluster.takeover_interval, take_over,
                      lambda: _step_down(supervisor, head))  # fmt: skip
    standby.start()
    return standby


def _setup_token(db: Any) -> str | None:
    """A one-time secret for first-run setup while no user exists, so that only someone who
    can read this server's output can create the first admin (there is no default password)."""
    from vigil.store import UserRepo

    with db.session() as session:
        if UserRepo(session).count() > 0:
            return None
    return secrets.token_urlsafe(18)


def _setup_link(config: VigilConfig, token: str) -> str:
    host = config.server.host
    # A wildcard address is what is bound; a browser on this host reaches it through loopback.
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{config.server.port}/#/setup?token={token}"


class _StopSignal:
    """SIGINT and SIGTERM ask for a graceful stop instead of ending the process.

    uvicorn replaces this handler while it runs; when it has shut down it puts it back and
    re-raises the signal it caught, meaning to let the default action run. The signal lands
    here instead, so the process lives on to stop the cameras and exits 0. With Python's
    default handlers SIGTERM would kill the process there and then, before
    ``Supervisor.stop()``: events left open, a ``.partial`` segment, and the camera's
    retained MQTT availability left ``online``. A signal during start-up is kept, and the
    cameras stop as soon as they have started.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self.install()

    def install(self) -> None:
        """(Re)take SIGINT and SIGTERM: ``ray.init`` puts in its own SIGTERM handler, which
        exits at once (status 15), skipping the graceful stop."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    @property
    def received(self) -> bool:
        return self._event.is_set()

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self._event.is_set():
            log.info("signal %d: already stopping", signum)
        else:
            log.info("signal %d: shutting down", signum)
        self._event.set()

    def wait(self, supervisor_wait: Callable[[float], bool]) -> None:
        """Block until a signal came or the supervisor stopped by itself."""
        while not self._event.wait(0.5):
            if supervisor_wait(0):
                return


def _load_api() -> None:
    """Import the web app before the cameras start. The runtime does not import it (worker
    processes must not load it), and on a busy machine it takes seconds: loaded after the
    start, the API would come up after the cameras' first events."""
    import uvicorn  # noqa: F401

    import vigil.api  # noqa: F401


def _run_api(
    config: VigilConfig, db: Any, supervisor: Any, *, setup_token: str | None = None,
    access_log: bool = True, clips: Any = None, head: Any = None,
) -> None:  # fmt: skip
    """``head``: the ``vigil.cluster.head.ClusterHead`` in cluster mode (media and status
    across nodes), else None."""
    import uvicorn

    from vigil.api import create_app
    from vigil.api.logs import server_log_config

    cluster: dict[str, Any] = {}
    if head is not None:
        cluster = {"media_resolver": head.media, "cluster_status": head.status}
    app = create_app(api_settings(config, setup_token=setup_token), db, supervisor,
                     data_dir=config.data_dir, **cluster)  # fmt: skip
    if clips is not None:
        clips.on_queued = app.state.vigil.wake_jobs
    # uvicorn handles SIGINT/SIGTERM itself and returns (see ``_StopSignal`` for what it does
    # next); the caller then stops the cameras.
    # Live streams (MJPEG, WebSocket) never finish by themselves: after a grace period
    # uvicorn cancels them, so that a viewer left open cannot hold the shutdown for ever.
    # proxy_headers=False: uvicorn would otherwise take X-Forwarded-For from any local peer
    # (its default trusts 127.0.0.1, the default host); the API itself believes the header
    # only from server.trusted_proxies (``vigil.api.deps.client_address``).
    # The log config keeps uvicorn's format but redacts the secrets some URLs carry.
    uvicorn.run(app, host=config.server.host, port=config.server.port,
                log_level="info" if access_log else "warning", access_log=access_log,
                log_config=server_log_config(), timeout_graceful_shutdown=3,
                proxy_headers=False)  # fmt: skip


def clip_jobs(config: VigilConfig, db: Any) -> Any:
    """The sink that queues each ended event's clip (the API renders them in the
    background), bounded by ``jobs.max_queued`` like every job."""
    from vigil.api.clips import ClipJobSink

    return ClipJobSink(db, max_queued=config.jobs.max_queued)


def api_settings(config: VigilConfig, *, setup_token: str | None = None) -> ApiSettings:
    """The API's settings from the configuration: its ``server`` and ``jobs`` sections, per
    camera its own redaction (every camera configured, disabled ones too: their recordings
    can still be exported) and clip rolls."""
    from vigil.api import ApiSettings
    from vigil.api.settings import default_hash_slots, networks

    server, jobs = config.server, config.jobs
    rolls = {name: (config.camera(name).record.pre_roll, config.camera(name).record.post_roll)
             for name in config.cameras}  # fmt: skip
    redact = {name: config.redact_for(name) for name in config.cameras}
    from vigil.privacy.redactor import tracks_people

    people = {name: tracks_people(config.camera(name).detect) for name in config.cameras}
    return ApiSettings(
        secure_cookies=server.secure_cookies, redact=config.redact, camera_redact=redact,
        camera_tracks_people=people, clip_rolls=rolls,
        trusted_proxies=networks(server.trusted_proxies), max_body_bytes=server.max_body_bytes,
        token_ttl_s=server.token_ttl, login_max_failures=server.login_max_failures,
        login_max_failures_per_address=server.login_max_failures_per_address,
        login_window_s=server.login_window,
        hash_slots=server.password_hash_concurrency or default_hash_slots(),
        setup_token=setup_token, min_free_bytes=server.min_free_bytes,
        outage_auth_ttl_s=server.outage_auth_ttl,
        job_workers=jobs.workers, max_queued_jobs=jobs.max_queued,
        max_user_jobs=jobs.max_user_exports, max_user_clip_jobs=jobs.max_user_clips,
        max_export_s=jobs.max_export_seconds, clip_cache_bytes=jobs.clip_cache_bytes,
        clip_wait_s=jobs.clip_wait, clip_settle_s=jobs.clip_settle,
        face_full_every_s=jobs.face_full_every,
    )  # fmt: skip
