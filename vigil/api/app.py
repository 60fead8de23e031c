"""``create_app``: the FastAPI application, secure by default.

Public routes: ``/api/health``, ``/api/setup`` (only while no user exists), ``/api/login``,
and the API's own documentation (``/api/docs``, ``/api/openapi.json``), which holds no data.
Every other route requires a session cookie (+ CSRF header on unsafe methods) or a bearer
token; ``tests/api/test_routes_auth.py`` enumerates the routes to hold that line.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from vigil import __version__
from vigil.api import errors
from vigil.api.auth import LoginLimiter
from vigil.api.clips import run_clip_job
from vigil.api.exports import run_export_job
from vigil.api.jobs import Handler, JobRunner
from vigil.api.routes import admin, auth, events, jobs, live, media
from vigil.api.runtime import RuntimeView
from vigil.api.settings import ApiSettings
from vigil.api.state import AppState, RedactorFactory
from vigil.store import AuditLog, Database
from vigil.web import PUBLIC_UI_PATHS
from vigil.web import mount as mount_web

#: What runs each kind of background job.
JOB_HANDLERS: dict[str, Handler] = {"clip": run_clip_job, "export": run_export_job}

#: Routes that answer without authentication (everything else must refuse). The web UI's
#: index (``/``) is one of them; its static files (``/static/...``, a mount, not a route) are
#: the other public part. Both hold no data (see ``vigil.web``).
PUBLIC_PATHS = frozenset({"/api/health", "/api/setup", "/api/login", "/api/docs",
                          "/api/docs/oauth2-redirect", "/api/openapi.json",
                          *PUBLIC_UI_PATHS})  # fmt: skip


def create_app(
    settings: ApiSettings,
    db: Database,
    runtime: RuntimeView,
    *,
    data_dir: Path,
    redactor_factory: RedactorFactory | None = None,
) -> FastAPI:
    """The API over a migrated ``db``, the running cameras and the media under ``data_dir``.

    ``redactor_factory``: builds the Redactor for ``(width, height)`` images; by default one
    from ``settings.redact`` with a CenterFace detector loaded on first use and shared.

    Starts ``settings.job_workers`` threads that render event clips and exports in the
    background (jobs a stopped server left running are queued again first); they stop when
    the app shuts down, or with ``app.state.vigil.jobs.stop()``.
    """

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        state.stopping.set()
        if state.jobs is not None:
            state.jobs.stop()

    app = FastAPI(
        title="Vigil", version=__version__, docs_url="/api/docs", redoc_url=None,
        openapi_url="/api/openapi.json",
        swagger_ui_oauth2_redirect_url="/api/docs/oauth2-redirect",
        description="Private-by-design video analytics. Every read of media is audited.",
        lifespan=lifespan,
    )  # fmt: skip
    state = app.state.vigil = AppState(
        settings=settings, db=db, runtime=runtime, data_dir=Path(data_dir),
        limiter=LoginLimiter(settings.login_max_failures, settings.login_window_s),
        audit_log=AuditLog(db), redactor_override=redactor_factory,
    )  # fmt: skip
    errors.install(app)
    for router in (auth.public, auth.router, events.router, media.router, jobs.router,
                   admin.router, live.router, live.sockets):  # fmt: skip
        app.include_router(router)
    if settings.job_workers > 0:
        state.jobs = JobRunner(state, JOB_HANDLERS, workers=settings.job_workers)
        state.jobs.start()
    mount_web(app)  # the web UI at / and /static (public: no data in it)
    return app
