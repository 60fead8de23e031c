"""``vigil serve --config FILE``: run every camera, record, store events, alert; serve the API.

The supervisor (``vigil.runtime.serve.Supervisor``) runs in background threads; the API
(uvicorn) runs in the main thread unless ``--no-api``, in which case the main thread waits for
SIGINT/SIGTERM. Either way shutdown is graceful and the exit status 0: open events are closed,
segments finished, cameras reported offline (``docker stop`` and systemd send SIGTERM).
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Callable
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

    # From the very start, so that a signal during start-up also ends in a clean stop.
    stop = _StopSignal()
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
            stop.wait(supervisor.wait)
        elif not stop.received:
            _run_api(config, db, supervisor)
    finally:
        supervisor.stop()
        db.close()
    return 0


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


def _run_api(config: Any, db: Any, supervisor: Any) -> None:
    import uvicorn

    from vigil.api import ApiSettings, create_app

    rolls = {name: (config.camera(name).record.pre_roll, config.camera(name).record.post_roll)
             for name in config.cameras}  # fmt: skip
    settings = ApiSettings(secure_cookies=config.server.secure_cookies,
                           redact=config.redact, clip_rolls=rolls)  # fmt: skip
    app = create_app(settings, db, supervisor, data_dir=config.data_dir)
    # uvicorn handles SIGINT/SIGTERM itself and returns (see ``_StopSignal`` for what it does
    # next); the caller then stops the cameras.
    # Live streams (MJPEG, WebSocket) never finish by themselves: after a grace period
    # uvicorn cancels them, so that a viewer left open cannot hold the shutdown for ever.
    uvicorn.run(app, host=config.server.host, port=config.server.port, log_level="info",
                timeout_graceful_shutdown=3)  # fmt: skip
