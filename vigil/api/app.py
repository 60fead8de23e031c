"""``create_app``: the FastAPI application, secure by default.

Public routes: ``/api/health``, ``/api/setup`` (only while no user exists), ``/api/login``,
and the API's own description (``/api/openapi.json``), which holds no data. There is no
Swagger UI page: FastAPI's loads its scripts from a CDN, which would put a third party's code
on Vigil's origin; load ``/api/openapi.json`` into any OpenAPI viewer instead.
Every other route requires a session cookie (+ CSRF header on unsafe methods) or a bearer
token; ``tests/api/test_routes_auth.py`` enumerates the routes to hold that line.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from vigil import __version__
from vigil.api import errors, openapi
from vigil.api.auth import HashGate, LoginThrottle
from vigil.api.clips import run_clip_job
from vigil.api.exports import run_export_job
from vigil.api.headers import ApiSecurityHeaders
from vigil.api.jobs import Handler, JobRunner
from vigil.api.limits import BodyLimit
from vigil.api.media import MediaResolver
from vigil.api.routes import admin, auth, events, jobs, live, livevideo, media, stream
from vigil.api.runtime import RuntimeView
from vigil.api.settings import ApiSettings
from vigil.api.state import AppState, RedactorFactory
from vigil.cluster.status import ClusterStatus
from vigil.store import AuditLog, Database
from vigil.web import PUBLIC_UI_PATHS
from vigil.web import mount as mount_web

#: What runs each kind of background job.
JOB_HANDLERS: dict[str, Handler[AppState]] = {"clip": run_clip_job, "export": run_export_job}

#: Routes that answer without authentication (everything else must refuse). The web UI's
#: index (``/``) is one of them; its static files (``/static/...``, a mount, not a route) are
#: the other public part. Both hold no data (see ``vigil.web``).
PUBLIC_PATHS = frozenset({"/api/health", "/api/setup", "/api/login", "/api/openapi.json",
                          *PUBLIC_UI_PATHS})  # fmt: skip


def create_app(
    settings: ApiSettings,
    db: Database,
    runtime: RuntimeView,
    *,
    data_dir: Path,
    redactor_factory: RedactorFactory | None = None,
    media_resolver: MediaResolver | None = None,
    cluster_status: Callable[[], ClusterStatus] | None = None,
) -> FastAPI:
    """The API over a migrated ``db``, the running cameras and the media under ``data_dir``.

    ``redactor_factory``: builds the redacting Redactor from a camera's ``RedactConfig``
    (``settings.redact_for(camera)``) for ``(width, height)`` images; by default
    ``build_redactor`` with a CenterFace detector loaded on first use and shared.

    ``media_resolver``: where rows' media files are read from (default: ``data_dir``; a
    cluster passes ``vigil.cluster.media.ClusterMedia``). ``cluster_status``: gathers the
    cluster's status for ``GET /api/cluster`` (None: a single host: ``{"cluster": null}``).

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
        title="Vigil", version=__version__, docs_url=None, redoc_url=None,
        openapi_url="/api/openapi.json", swagger_ui_oauth2_redirect_url=None,
        description="Private-by-design video analytics. Every read of media is audited.",
        lifespan=lifespan,
    )  # fmt: skip
    state = app.state.vigil = AppState(
        settings=settings, db=db, runtime=runtime, data_dir=Path(data_dir),
        throttle=LoginThrottle(db, account_max=settings.login_max_failures,
                               address_max=settings.login_max_failures_per_address,
                               window_s=settings.login_window_s),
        hashing=HashGate(settings.hash_slots, settings.hash_queue, settings.hash_wait_s),
        audit_log=AuditLog(db), redactor_override=redactor_factory, media_resolver=media_resolver,
        cluster_status=cluster_status,
    )  # fmt: skip
    errors.install(app)
    for router in (auth.public, auth.router, events.router, media.router, jobs.router,
                   admin.router, live.router, live.sockets, livevideo.sockets, stream.router,
                   stream.public):  # fmt: skip
        app.include_router(router)
    if settings.job_workers > 0:
        state.jobs = JobRunner(state, JOB_HANDLERS, workers=settings.job_workers)
        state.jobs.start()
    mount_web(app)  # the web UI at / and /static (public: no data in it)
    app.add_middleware(ApiSecurityHeaders)
    openapi.install(app, PUBLIC_PATHS)
    # Outermost, so an oversized body is refused before any route or middleware reads it.
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    return app
