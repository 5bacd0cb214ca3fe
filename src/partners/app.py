"""The FastAPI app factory."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.types import Receive, Scope, Send

from partners import __version__
from partners.db.engine import create_engine
from partners.db.session import Database
from partners.events.batching import PurchaseBatcher
from partners.identity.deps import VerifiedApiKeys
from partners.kit.errors import AppError
from partners.kit.logging import configure_logging
from partners.kit.middleware import RequestContextMiddleware
from partners.kit.problems import install_problem_handlers
from partners.settings import Settings, get_settings
from partners.tracking.api import redirect_code, serve_redirect
from partners.tracking.journal import ClickJournal
from partners.tracking.recorder import ClickRecorder


class NotReady(AppError):
    status = 503
    title = "Not ready"
    type_slug = "not-ready"


class PartnersApp(FastAPI):
    """FastAPI, with the click redirect answered before FastAPI's own middleware (its error page, telemetry and
    body limit) and ours: ~25 µs of a click's CPU in one process (bench/README.md, round 10)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        code = redirect_code(scope)
        if code is None:
            await super().__call__(scope, receive, send)
        else:
            await serve_redirect(self.state, scope, receive, send, code)


def tune_garbage_collector() -> None:
    """Fewer, cheaper collections once the app is loaded: the objects of the start-up (modules, routes, the
    ORM's mappings) move out of the collector's sight, and the young generation is collected every 50,000
    allocations instead of 700. Full collections walking every live object paused the event loop for up to
    ~100 ms under load (the redirect's p99, benchmark 1). Production only: a test process creates hundreds of
    apps, and what `gc.freeze()` hides is never collected."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def create_app(settings: Settings | None = None, database: Database | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(json=settings.environment == "production", level=settings.log_level)
    database = database or Database(create_engine(settings.database_url))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        recorder: ClickRecorder = app.state.click_recorder
        await recorder.start()
        worker = None
        if settings.embedded_worker:
            from partners.jobs.worker import EmbeddedWorker

            worker = EmbeddedWorker(database, settings)
            await worker.start()
        if settings.environment == "production":
            tune_garbage_collector()
        try:
            yield
        finally:
            if worker is not None:
                await worker.stop()
            await recorder.stop()
            await database.dispose()

    app = PartnersApp(title="Namaskah Partners", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.database = database
    app.state.click_recorder = _click_recorder(settings, database)
    app.state.purchase_batcher = PurchaseBatcher(database)
    app.state.verified_api_keys = VerifiedApiKeys()
    _add_purchase_fast_path(app)
    app.add_middleware(RequestContextMiddleware)
    install_problem_handlers(app)
    _add_operational_routes(app)
    _include_routers(app)
    return app


def _click_recorder(settings: Settings, database: Database) -> ClickRecorder:
    folder = settings.click_journal_dir
    journal = ClickJournal(Path(folder), settings.database_url) if folder else None
    return ClickRecorder(database, flush_interval=settings.click_flush_seconds, journal=journal)


def _add_operational_routes(app: FastAPI) -> None:
    @app.get("/health", tags=["ops"])
    async def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/ready", tags=["ops"])
    async def ready(request: Request) -> dict[str, str]:
        database: Database = request.app.state.database
        try:
            async with database.read() as session:
                await session.execute(text("SELECT 1"))
        except Exception as error:
            raise NotReady(f"database unavailable: {type(error).__name__}") from error
        return {"status": "ready", "database": database.dialect}

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def _add_purchase_fast_path(app: FastAPI) -> None:
    """Inside the per-request middleware: `POST /events/purchase` skips the routing (bench/)."""
    from partners.events.api import PurchaseFastPath

    app.add_middleware(PurchaseFastPath)


def _include_routers(app: FastAPI) -> None:
    """Each domain's thin router. Added here, and only here.

    A request is matched against the routes one after the other, in this order; no path is answered by two
    routes (`tests/test_app.py`), so the order only decides how many are tried first. The busiest come first:
    host events (one request per purchase), then the partner's dashboard, commissions and links. Each route
    tried costs a few microseconds: ~160 µs of a purchase event's ~730 µs in the HTTP layer when the events came
    after the other API routers (bench/README.md, round 6)."""
    from partners.affiliates.api import router as affiliates_router
    from partners.commissions.api import router as commissions_router
    from partners.dashboard.api import router as dashboard_router
    from partners.disputes.api import router as disputes_router
    from partners.events.api import router as events_router
    from partners.identity.api import router as identity_router
    from partners.jobs.api import router as jobs_router
    from partners.ledger.api import router as ledger_router
    from partners.payouts.api import router as payouts_router
    from partners.programs.api import router as programs_router
    from partners.tracking.api import router as tracking_router

    for router in (
        events_router,
        dashboard_router,
        commissions_router,
        tracking_router,
        affiliates_router,
        identity_router,
        ledger_router,
        jobs_router,
        programs_router,
        disputes_router,
        payouts_router,
    ):
        app.include_router(router)

    from partners.web import install_web

    install_web(app)
