"""The aiohttp application factory: wires settings, stores and every domain into one app."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from store.connections import Stores
from store.embedded import EmbeddedServers
from store.migrations import Migration
from web import health, metrics, pages
from web.problems import problem_middleware
from web.settings import Settings

log = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", Settings)
STORES = web.AppKey("stores", Stores)


def all_migrations() -> list[Migration]:
    """Every domain's schema files, in dependency order (later domains reference earlier tables)."""
    import auth
    import chat

    return [*auth.migrations(), *chat.migrations()]


async def resolve_urls(settings: Settings, embedded: EmbeddedServers) -> tuple[str, str]:
    """The configured URLs, or those of embedded servers started in the data folder."""
    database_url = settings.database_url or await asyncio.to_thread(embedded.start_postgres)
    redis_url = settings.redis_url or await asyncio.to_thread(embedded.start_redis)
    return database_url, redis_url


def create_app(settings: Settings) -> web.Application:
    app = web.Application(client_max_size=settings.max_request_bytes)
    metrics.setup(app)  # first, so it is the outermost middleware and sees final statuses
    app.middlewares.append(problem_middleware)
    stores = Stores()
    app[SETTINGS] = settings
    app[STORES] = stores

    async def stores_context(app: web.Application) -> AsyncIterator[None]:
        embedded = EmbeddedServers(settings.data_dir)
        database_url, redis_url = await resolve_urls(settings, embedded)
        await stores.open(database_url, redis_url, all_migrations(), pool_size=settings.db_pool_size)
        log.info("stores open", extra={"embedded_postgres": settings.database_url is None,
                                       "embedded_redis": settings.redis_url is None})
        yield
        await stores.close()
        embedded.stop()

    app.cleanup_ctx.append(stores_context)
    health.setup(app, stores)
    _setup_domains(app, stores, settings)
    pages.setup(app, settings)
    return app


def _setup_domains(app: web.Application, stores: Stores, settings: Settings) -> None:
    import auth
    import chat

    auth_service = auth.setup(app, stores, settings)
    chat.setup(app, stores, settings, auth_service)
