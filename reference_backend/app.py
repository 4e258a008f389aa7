"""The app factory: `create_app(settings)` builds the FastAPI app, its state and the ASGI middleware.

The database is opened and its schema created when the app starts (lifespan), not at import or
construction, so building an app is cheap; the wrapped FastAPI app is `create_app(...).fastapi_app`.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from reference_backend.core import AppState, json_response, state
from reference_backend.db import Database, DatabaseUnavailable
from reference_backend.faults import FaultRuleError, FaultSet
from reference_backend.middleware import Gateway, RateLimiter, RequestCounter
from reference_backend.model import SimulatedModel
from reference_backend.settings import Settings

log = logging.getLogger("reference_backend")


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def create_app(settings: Settings | None = None) -> Any:
    """The ASGI application (FastAPI wrapped in the counting / limiting / fault middleware)."""
    settings = settings or Settings.from_env()
    db = Database(settings.database_url)
    faults = FaultSet(settings.faults)
    counter = RequestCounter()
    limiter = RateLimiter(settings.rate_limit) if settings.rate_limit else None
    model = SimulatedModel(settings.llm_first_token_ms, settings.llm_token_ms)
    st = AppState(settings=settings, db=db, faults=faults, counter=counter, limiter=limiter, model=model)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import anyio.to_thread

        from reference_backend import frameworks, reports

        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threads
        await run_in_threadpool(db.create_schema)
        await run_in_threadpool(frameworks.install, db)
        if settings.demo_data:
            from reference_backend.seed import seed_demo

            await run_in_threadpool(seed_demo, db, settings)
        st.reports = reports.ReportRunner(st)
        try:
            yield
        finally:
            await st.reports.shutdown()
            db.close()

    app = FastAPI(
        title="ComplianceGPT reference backend",
        version="1.0",
        description="Serves the ComplianceGPT API contract for load tests; see COMPLIANCEGPT_API.md.",
        lifespan=lifespan,
    )
    app.state.backend = st

    from reference_backend import routes_auth, routes_chat, routes_compliance, routes_evidence, routes_reports

    app.include_router(routes_auth.router)
    app.include_router(routes_evidence.router)
    app.include_router(routes_compliance.router)
    app.include_router(routes_chat.router)
    app.include_router(routes_reports.router)

    @app.get("/health", tags=["ops"])
    async def health() -> Any:
        return json_response({"status": "healthy", "database": db.dialect})

    @app.get("/ready", tags=["ops"])
    async def ready() -> Any:
        try:
            await run_in_threadpool(db.ping)
        except DatabaseUnavailable as exc:
            return json_response({"status": "unavailable", "detail": str(exc)}, 503)
        return json_response({"status": "ready", "database": db.dialect})

    if settings.admin:
        _add_admin(app)

    @app.exception_handler(DatabaseUnavailable)
    async def _db_down(request: Request, exc: DatabaseUnavailable) -> Any:
        return json_response({"detail": str(exc)}, 503)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Any:
        return json_response({"detail": exc.detail}, exc.status_code, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Any:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return json_response({"detail": errors}, 422)

    return Gateway(app, app, settings, counter, faults, limiter)


def _add_admin(app: FastAPI) -> None:
    def loopback_only(request: Request) -> AppState:
        client = request.client.host if request.client else None
        if not is_loopback(client):
            raise HTTPException(403, "admin endpoints answer loopback clients only")
        return state(request)

    @app.get("/admin/faults", tags=["admin"])
    async def get_faults(request: Request) -> Any:
        return json_response({"faults": loopback_only(request).faults.rules()})

    @app.put("/admin/faults", tags=["admin"])
    async def put_faults(request: Request) -> Any:
        st = loopback_only(request)
        try:
            body = await request.json()
        except ValueError:
            raise HTTPException(422, 'body must be JSON: a list of rules or {"faults": [...]}') from None
        rules = body.get("faults") if isinstance(body, dict) else body
        if not isinstance(rules, list):
            raise HTTPException(422, 'body must be a list of rules or {"faults": [...]}')
        try:
            st.faults.replace(rules)
        except FaultRuleError as exc:
            raise HTTPException(422, str(exc)) from None
        return json_response({"faults": st.faults.rules()})

    @app.delete("/admin/faults", tags=["admin"])
    async def delete_faults(request: Request) -> Any:
        loopback_only(request).faults.clear()
        return json_response({"faults": []})

    @app.get("/admin/requests", tags=["admin"])
    async def get_requests(request: Request) -> Any:
        return json_response(loopback_only(request).counter.snapshot())

    @app.delete("/admin/requests", tags=["admin"])
    async def reset_requests(request: Request) -> Any:
        st = loopback_only(request)
        st.counter.reset()
        return json_response(st.counter.snapshot())
