"""``vigil serve --config FILE``: run every camera, record, store events, alert; serve the API.

The supervisor (``vigil.runtime.serve.Supervisor``) runs in background threads; the API
(uvicorn) runs in the main thread unless ``--no-api``, in which case the main thread waits for
SIGINT/SIGTERM. Either way shutdown is graceful: open events are closed, segments finished,
cameras reported offline.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from types import FrameType
from typing import Any

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
    from vigil.runtime.serve import Supervisor
    from vigil.store import Database, database_url_for

    config = load_config(args.config)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(database_url_for(config))
    db.migrate()
    supervisor = Supervisor(config, db=db)
    supervisor.start()
    print(f"vigil serve: {len(supervisor.workers)} camera(s), data in {config.data_dir}, "
          f"database {db.display_url}", flush=True)  # fmt: skip
    try:
        if args.no_api:
            _wait_for_signal(supervisor.wait)
        else:
            _run_api(config, db, supervisor)
    finally:
        supervisor.stop()
        db.close()
    return 0


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


def _run_api(config: Any, db: Any, supervisor: Any) -> None:
    import uvicorn

    from vigil.api import ApiSettings, create_app

    rolls = {name: (config.camera(name).record.pre_roll, config.camera(name).record.post_roll)
             for name in config.cameras}  # fmt: skip
    settings = ApiSettings(secure_cookies=config.server.secure_cookies,
                           redact=config.redact, clip_rolls=rolls,
                           min_free_bytes=config.server.min_free_bytes)  # fmt: skip
    app = create_app(settings, db, supervisor, data_dir=config.data_dir)
    # uvicorn handles SIGINT/SIGTERM itself and returns; the caller then stops the cameras.
    # Live streams (MJPEG, WebSocket) never finish by themselves: after a grace period
    # uvicorn cancels them, so that a viewer left open cannot hold the shutdown for ever.
    uvicorn.run(app, host=config.server.host, port=config.server.port, log_level="info",
                timeout_graceful_shutdown=3)  # fmt: skip
