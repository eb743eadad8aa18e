"""The aiohttp application factory: wires settings, stores and every domain into one app."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web

from store.connections import Stores
from store.embedded import EmbeddedServers
from store.migrations import Migration, migrate_as_owner
from store.postgres import with_user
from triage.runner import TriageHooks, WorkerSupervisor
from web import headers, health, metrics, openapi, pages
from web.outages import outage_middleware
from web.problems import problem_middleware
from web.settings import Settings
from web.socket_frames import malformed_frame_middleware

log = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", Settings)
# The role the servers use on the embedded PostgreSQL (its superuser only migrates).
EMBEDDED_RUNTIME_ROLE = "skindoc_runtime"
STORES = web.AppKey("stores", Stores)


def append_only_tables() -> tuple[str, ...]:
    """Tables the runtime role may only read and append to."""
    import auth

    return auth.APPEND_ONLY_TABLES


def all_migrations() -> list[Migration]:
    """Every domain's schema files, in dependency order (later domains reference earlier tables)."""
    import auth
    import chat
    import triage

    return [*auth.migrations(), *chat.migrations(), *triage.migrations()]


def resolve_urls(settings: Settings, embedded: EmbeddedServers) -> tuple[str, str]:
    """The configured URLs, or those of the embedded servers in the data folder (see store.embedded).

    Called on the main thread, at start-up: the embedded Redis is tied to the thread that starts it.
    """
    database_url, redis_url = embedded.open(postgres=settings.database_url is None, redis=settings.redis_url is None)
    return settings.database_url or database_url, settings.redis_url or redis_url


async def prepare_database(settings: Settings, database_url: str) -> str:
    """Migrates as the owner where there is one, and returns the URL to serve with (README, "Security").

    With SKINDOC_DATABASE_OWNER_URL, its role migrates and grants database_url's role what it needs.
    The embedded server is split the same way: its superuser migrates, and the servers run as
    EMBEDDED_RUNTIME_ROLE, which cannot rewrite the audit log either."""
    if settings.database_url is None:
        runtime_url = await _embedded_runtime_role(database_url)
        await migrate_as_owner(database_url, runtime_url, all_migrations(), append_only=append_only_tables())
        return runtime_url
    if settings.database_owner_url:
        await migrate_as_owner(
            settings.database_owner_url, database_url, all_migrations(), append_only=append_only_tables()
        )
    return database_url


async def _embedded_runtime_role(owner_url: str) -> str:
    """The embedded cluster's runtime role (created once; it trusts local connections), as a URL."""
    conn = await asyncpg.connect(owner_url)
    try:
        await conn.execute(f"""DO $$ BEGIN
                                   CREATE ROLE {EMBEDDED_RUNTIME_ROLE} LOGIN;
                               EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
                               END $$""")
    finally:
        await conn.close()
    return with_user(owner_url, EMBEDDED_RUNTIME_ROLE)


def create_app(settings: Settings) -> web.Application:
    app = web.Application(client_max_size=settings.max_request_bytes)
    metrics.setup(app, settings.metrics_token)  # first, so it is the outermost middleware and sees final statuses
    headers.setup(app)
    app.middlewares.append(problem_middleware)
    stores = Stores()
    app.middlewares.append(outage_middleware(stores))
    app.middlewares.append(malformed_frame_middleware)
    app[SETTINGS] = settings
    app[STORES] = stores

    async def stores_context(app: web.Application) -> AsyncIterator[None]:
        # `skindoc serve` owns the embedded servers it starts and stops them when it exits.
        embedded = EmbeddedServers(settings.data_dir, role="serve")
        database_url, redis_url = resolve_urls(settings, embedded)
        try:
            database_url = await prepare_database(settings, database_url)
            await stores.open(
                database_url,
                redis_url,
                all_migrations(),
                pool_size=settings.db_pool_size,
                redis_connections=settings.redis_max_connections,
            )
            log.info(
                "stores open",
                extra={
                    "embedded_postgres": settings.database_url is None,
                    "embedded_redis": settings.redis_url is None,
                },
            )
            yield
        finally:
            await stores.close()
            embedded.stop()

    app.cleanup_ctx.append(stores_context)
    health.setup(app, stores, settings.triage)
    openapi.setup(app)
    _setup_domains(app, stores, settings)
    pages.setup(app, settings)
    return app


def _setup_domains(app: web.Application, stores: Stores, settings: Settings) -> None:
    import auth
    import chat
    from chat import outcomes

    auth_service = auth.setup(app, stores, settings)
    chat.setup(app, stores, settings, auth_service)
    outcomes.setup(app, stores, settings.outcomes, settings.max_json_bytes, app[metrics.METRICS_REGISTRY])
    _setup_triage(app, stores, settings)


def triage_hooks(settings: Settings, notifier) -> TriageHooks:
    """Chat's side of triage, lent to it here so that triage imports no other domain."""
    from chat import queue
    from chat.store import waiting_queue

    async def open_consultations(conn) -> list:
        return [row["id"] for row in await waiting_queue.queue_rows(conn, settings.chat.queue_ageing_minutes * 60)]

    return TriageHooks(on_scored=queue.apply_triage_result, notifier=notifier, open_consultations=open_consultations)


def _setup_triage(app: web.Application, stores: Stores, settings: Settings) -> None:
    """Photo routes always; the triage worker too when embedded (one command, a whole system) or asked for."""
    from chat import SOCKETIO_SERVER
    from chat.photo_routes import PhotoRoutes
    from chat.realtime import QueueNotifier

    PhotoRoutes(stores, settings.triage).register_on(app)
    embedded = settings.database_url is None or settings.redis_url is None
    if not (embedded or settings.triage.inprocess_worker):
        return

    async def worker_context(app: web.Application) -> AsyncIterator[None]:
        hooks = triage_hooks(settings, QueueNotifier(app[SOCKETIO_SERVER]))
        # Supervised: a worker that stops on an error is replaced; store faults it rides out itself.
        supervisor = WorkerSupervisor(stores.pool, stores.redis, settings.triage, hooks)
        task = asyncio.create_task(supervisor.run(), name="inprocess-triage-worker")
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    app.cleanup_ctx.append(worker_context)
