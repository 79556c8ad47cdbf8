"""The FastAPI application: one Temporal client and one database per process (lifespan)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from temporalio.client import Client

from api import errors, middleware
from api.routers import (
    assets,
    audit,
    channels,
    console,
    customers,
    dashboard,
    health,
    integrations,
    inventory,
    links,
    me,
    message_templates,
    people,
    reports,
    schedules,
    settlement,
    subscriptions,
    surveys,
    templates,
    tickets,
    tracking,
)
from api.services import identity
from models.db import Database
from models.settings import Settings, get_settings
from workers import telemetry
from workers.client import connect

# Probes and scrapes make no spans (matched against the request's URL without its query).
UNTRACED = "://[^/]+/health$,://[^/]+/metrics$"


async def _refuse_demo_keys(db: Database) -> None:
    """Production never starts while a ``demo-<id>`` key works: they are public knowledge."""
    async with db.session() as session:
        keys = await identity.working_demo_keys(session)
    if keys:
        await db.dispose()
        owners = ", ".join(sorted({k.actor_id for k in keys})[:5])
        raise RuntimeError(
            f"refusing to start in production: {len(keys)} demo API key(s) (demo-<person id>) still work "
            f"(for {owners}{', …' if len(keys) > 5 else ''}); revoke them with "
            "`TICKETFLOW_ENVIRONMENT=production python -m api.demo --revoke-demo-keys`"
        )


def create_app(
    settings: Settings | None = None, client: Client | None = None, tracer_provider: TracerProvider | None = None
) -> FastAPI:
    """``client`` lets tests hand in a client they already have; otherwise one is connected at start.
    Traces (``TICKETFLOW_TRACING``, or a test's ``tracer_provider``): each request is a span, and
    the client carries its context into the Update, the workflow and its activities."""
    settings = settings or get_settings()
    tracer = tracer_provider or telemetry.configure_tracing(settings, "ticketflow-api")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.oidc = identity.OidcVerifier(settings) if identity.oidc_enabled(settings) else None
        app.state.db = Database(settings.database_url, settings.db_statement_timeout_ms)
        if settings.environment == "production":
            await _refuse_demo_keys(app.state.db)
        app.state.temporal = client or await connect(
            settings.temporal_address,
            settings.temporal_namespace,
            settings.temporal_connect_timeout_s,
            interceptors=telemetry.temporal_interceptors(tracer),
        )
        yield
        await app.state.db.dispose()
        if tracer is not None:
            tracer.force_flush()

    app = FastAPI(
        title="Ticketflow",
        version="0.1.0",
        summary="Durable work-order (工单) orchestration on Temporal.",
        description="Every ticket is a Temporal workflow `ticket-<id>`. Say who you are with an API key "
        "(`X-API-Key`) or, where configured, an OpenID Connect token (`Authorization: Bearer`). Actions are "
        "Temporal Updates: the reply is the new state, or a 409 naming the current status and the allowed actions.",
        lifespan=lifespan,
    )
    errors.install(app)
    middleware.install(app, settings)
    if tracer is not None:  # outermost: the span covers the refusals at the edge too
        FastAPIInstrumentor.instrument_app(app, tracer_provider=tracer, excluded_urls=UNTRACED)
    app.include_router(tickets.router)
    app.include_router(surveys.router)
    app.include_router(links.router)
    app.include_router(templates.router)
    app.include_router(message_templates.router)
    app.include_router(me.router)
    app.include_router(inventory.router)
    app.include_router(assets.router)
    app.include_router(customers.router)
    app.include_router(channels.router)
    app.include_router(integrations.router)
    app.include_router(subscriptions.router)
    app.include_router(schedules.router)
    app.include_router(settlement.router)
    app.include_router(people.router)
    app.include_router(audit.router)
    app.include_router(reports.router)
    app.include_router(dashboard.router)
    app.include_router(console.router)
    app.include_router(tracking.router)
    app.include_router(health.router)
    return app
