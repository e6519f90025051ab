"""The FastAPI application: assembles the domain routers, the pages and the retention scheduler."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from xstatic.pkg import leaflet

from temoin import __version__, maintenance
from temoin.evidence.canonical import b64e
from temoin.live.hub import LiveHub
from temoin.platform import Platform
from temoin.supervision import dispatch as dispatch_service
from temoin.web import hardening, i18n, page_errors, pages, problems, refusals, rights
from temoin.web.routes import (
    admin,
    axis,
    camera,
    cctv,
    dispatch,
    erasure_certificate,
    extractions,
    ingest,
    journal,
    keys,
    live,
    maps,
    recording_pages,
    recordings,
    reports,
    session,
    shifts,
    sign_in,
)

API_DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"
log = logging.getLogger("temoin.retention")


async def _every(interval_s: float, work: Callable[[], None], what: str, *, first_at_start: bool) -> None:
    """Run `work` in the thread pool every `interval_s` while the server runs (the server's periodic jobs): a failure
    is logged and the next run retries, the loop never dies of it."""
    if not first_at_start:
        await asyncio.sleep(interval_s)
    while True:
        try:
            await run_in_threadpool(work)
        except Exception:  # keep the scheduler alive; the next run retries
            log.exception("%s failed", what)
        await asyncio.sleep(interval_s)


async def _retention_loop(p: Platform) -> None:
    """The server deletes what the law says to delete, without anyone having to remember to."""
    passes = itertools.count()

    def sweep() -> None:
        # The whole-store orphan scan is slow on a large vault: at start-up, then daily.
        orphans = next(passes) % max(1, 86400 // p.settings.retention_interval_s) == 0
        result = maintenance.periodic_pass(p, orphans=orphans)  # the very pass `temoin maintenance run` runs once
        if result.sweep.deleted:
            log.info("retention: %d recordings deleted", len(result.sweep.deleted))

    await _every(p.settings.retention_interval_s, sweep, "retention sweep", first_at_start=True)


async def _sealing_loop(p: Platform, refused: refusals.RefusalLog) -> None:
    """Seal the chains whose head moved, every interval: the unsealed tail of the journal stays short. With the
    job queue (TEMOIN_JOBS=postgresql) the workers seal, once for the cluster; each server flushes its own log."""

    def seal() -> None:
        refused.flush(p)  # the refused authentications of the minutes past (this process's memory)
        if p.settings.jobs != "postgresql":
            maintenance.seal_journal(p)

    await _every(max(0.1, p.settings.journal_seal_interval_s), seal, "journal sealing", first_at_start=False)


def create_app(p: Platform, *, scheduler: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        tasks = []
        if scheduler:
            try:
                await run_in_threadpool(maintenance.start_up, p)  # the journal file level with the database
            except Exception:  # serve anyway: verification names what is left, the next start retries
                log.exception("journal start-up repair failed")
            tasks = [asyncio.create_task(_sealing_loop(p, app.state.refusals))]
            if p.settings.jobs != "postgresql":  # else the workers run the pass, once per period for the cluster
                tasks.append(asyncio.create_task(_retention_loop(p)))
        await app.state.live.start()  # the live media plane and its stream watcher
        yield
        await app.state.live.stop()
        for task in tasks:
            task.cancel()
        try:
            await run_in_threadpool(app.state.refusals.flush, p, every=True)
        except Exception:  # shutting down: say so, do not hide the shutdown
            log.exception("journaling the last refused authentications failed")

    app = FastAPI(
        title="Témoin",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        description="Body-worn cameras: evidence vault, live supervision, camera agent.",
    )
    app.state.platform = p
    app.state.live = LiveHub(p)
    app.state.refusals = refusals.RefusalLog()
    # A closed incident recalls the reinforcement orders still running towards it (the end of the stream does not).
    app.state.live.on_incident_closed.append(
        lambda db, s, by: dispatch_service.recall_for_incident(p, db, app.state.live.bus, s, by)
    )
    # Leaflet from its Python package: the map works with no network (xstatic-leaflet).
    app.mount("/static/leaflet", StaticFiles(directory=leaflet.BASE_DIR), name="leaflet")
    # Swagger UI (Apache-2.0) and ReDoc (MIT) from the fastapi-offline package: /docs and /redoc work with no network.
    app.mount("/static/api-docs", StaticFiles(directory=API_DOCS_ASSETS), name="api-docs")
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")

    @app.get("/docs", include_in_schema=False)
    def api_docs() -> Response:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="Témoin · API",
            swagger_js_url="/static/api-docs/swagger-ui-bundle.js",
            swagger_css_url="/static/api-docs/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
            oauth2_redirect_url="/docs/oauth2-redirect",
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def api_docs_oauth2_redirect() -> Response:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def api_redoc() -> Response:
        return get_redoc_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="Témoin · API",
            redoc_js_url="/static/api-docs/redoc.standalone.js",
            redoc_favicon_url="/static/favicon.svg",
            with_google_fonts=False,
        )

    for router in (
        session.router,
        ingest.router,
        recordings.router,
        journal.router,
        admin.router,
        admin.devices_router,
        shifts.router,
        camera.router,
        live.router,
        live.pages,
        cctv.router,
        cctv.pages,
        dispatch.router,
        dispatch.pages,
        extractions.router,
        extractions.pages,
        rights.router,
        rights.pages,
        erasure_certificate.router,
        reports.router,
        reports.pages,
        maps.router,
        keys.router,
        axis.router,
        axis.admin_router,
        session.pages,  # /account: password, API tokens
        sign_in.pages,
        recording_pages.pages,
        journal.pages,
        i18n.router,
    ):
        app.include_router(router)

    @app.get("/api/v1/platform", tags=["platform"], summary="Platform public key and clock")
    def platform_info() -> dict:
        # Public: a camera checks receipts with this key and measures its clock offset.
        return {
            "version": __version__,
            "public_key": b64e(p.keyring.public_key),
            "public_key_id": p.keyring.public_key_id,
            "public_key_fingerprint": p.keyring.fingerprint,
            "keys_url": "/.well-known/temoin/keys.json",
            "time": time.time(),
        }

    problems.install(app)  # domain errors and a full database: problem+json, never a bare 500

    @app.exception_handler(pages.SignInRequired)
    async def _to_login(request: Request, exc: pages.SignInRequired) -> Response:
        return RedirectResponse("/login", 303)

    @app.exception_handler(pages.PasswordChangeRequired)
    async def _to_account(request: Request, exc: pages.PasswordChangeRequired) -> Response:
        return RedirectResponse("/account", 303)  # the only page open until the password is the user's own

    page_errors.install(app)  # last: every error handler above answers a browser's page request with a page

    # Outermost last: the body limit acts before anything reads the body; every answer, a 413 included, carries
    # the security headers (content security policy, HSTS on TLS).
    app.add_middleware(hardening.BodyLimit, settings=p.settings)
    app.add_middleware(hardening.SecurityHeaders)

    return app
