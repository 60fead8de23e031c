"""``vigil serve --config FILE``: run every camera, record, store events, alert; serve the API.

The supervisor (``vigil.runtime.serve.Supervisor``) runs in background threads; the API
(uvicorn) runs in the main thread unless ``--no-api``, in which case the main thread waits for
SIGINT/SIGTERM. Either way shutdown is graceful: open events are closed, segments finished,
cameras reported offline.
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
    parser.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from vigil.config.loader import load_config

    return serve(load_config(args.config), api=not args.no_api)


def serve(
    config: VigilConfig, *, api: bool = True, access_log: bool = True,
    announce: Callable[[str], None] = print,
) -> int:  # fmt: skip
    """Run ``config``'s cameras (and the API) until SIGINT or SIGTERM; ``vigil demo`` uses it
    too. ``announce`` gets the lines a person starting the server should read."""
    from vigil.runtime.serve import Supervisor
    from vigil.store import Database, database_url_for

    config.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(database_url_for(config))
    db.migrate()
    clips: Any = None
    if api:  # the API renders each ended event's clip in the background: queue them
        from vigil.api.clips import ClipJobSink

        clips = ClipJobSink(db)
    supervisor = Supervisor(config, db=db, sinks=() if clips is None else (clips,))
    supervisor.start()
    announce(f"vigil serve: {len(supervisor.workers)} camera(s), data in {config.data_dir}, "
             f"database {db.display_url}")  # fmt: skip
    try:
        if not api:
            _wait_for_signal(supervisor.wait)
        else:
            token = _setup_token(db)
            if token is not None:
                announce(f"No user exists yet: open {_setup_link(config, token)} to create the "
                         "first administrator (the link works once).")  # fmt: skip
            _run_api(config, db, supervisor, setup_token=token, access_log=access_log,
                     clips=clips)
    finally:
        supervisor.stop()
        db.close()
    return 0


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


def _wait_for_signal(wait: Any) -> None:
    """Block until SIGINT or SIGTERM (Ctrl-C or ``kill``)."""
    stop = threading.Event()

    def handle(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: shutting down", signum)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handle)
    while not stop.wait(0.5):
        if wait(0):  # the supervisor stopped by itself
            return


def _run_api(
    config: VigilConfig, db: Any, supervisor: Any, *, setup_token: str | None = None,
    access_log: bool = True, clips: Any = None,
) -> None:  # fmt: skip
    import uvicorn

    from vigil.api import ApiSettings, create_app

    rolls = {name: (config.camera(name).record.pre_roll, config.camera(name).record.post_roll)
             for name in config.cameras}  # fmt: skip
    settings = ApiSettings(secure_cookies=config.server.secure_cookies,
                           redact=config.redact, clip_rolls=rolls,
                           setup_token=setup_token)  # fmt: skip
    app = create_app(settings, db, supervisor, data_dir=config.data_dir)
    if clips is not None:
        clips.on_queued = app.state.vigil.wake_jobs
    # uvicorn handles SIGINT/SIGTERM itself and returns; the caller then stops the cameras.
    # Live streams (MJPEG, WebSocket) never finish by themselves: after a grace period
    # uvicorn cancels them, so that a viewer left open cannot hold the shutdown for ever.
    uvicorn.run(app, host=config.server.host, port=config.server.port,
                log_level="info" if access_log else "warning", access_log=access_log,
                timeout_graceful_shutdown=3)  # fmt: skip
