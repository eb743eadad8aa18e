"""The shared handles every domain uses: one PostgreSQL pool and one Redis client per process."""

from __future__ import annotations

import asyncpg
import redis.asyncio as redis

from store.migrations import Migration, apply_migrations
from store.outages import DATABASE, REDIS, OutageWatch, outage_kind
from store.postgres import create_pool
from store.redis_client import create_redis


class Stores:
    """Opened at start-up, closed at clean-up; domains keep a reference and use it per request."""

    def __init__(self) -> None:
        self._pool: asyncpg.Pool | None = None
        self._redis: redis.Redis | None = None
        self.watches = {
            DATABASE: OutageWatch(DATABASE, self._ping_database, self._renew_database_connections),
            REDIS: OutageWatch(REDIS, self._ping_redis),
        }

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("database pool is not open")
        return self._pool

    @property
    def redis(self) -> redis.Redis:
        if self._redis is None:
            raise RuntimeError("redis client is not open")
        return self._redis

    async def open(
        self,
        database_url: str,
        redis_url: str,
        migrations: list[Migration],
        *,
        pool_size: int = 10,
        redis_connections: int = 64,
    ) -> None:
        self._pool = await create_pool(database_url, max_size=pool_size)
        async with self._pool.acquire() as conn:
            await apply_migrations(conn, migrations)
        self._redis = create_redis(redis_url, redis_connections)

    def report_outage(self, exc: BaseException) -> str | None:
        """The store `exc` says is unreachable (and its watch told), or None when it is some other error."""
        kind = outage_kind(exc)
        if kind is not None:
            self.watches[kind].report(exc)
        return kind

    async def _ping_database(self) -> None:
        await self.pool.fetchval("SELECT 1")

    async def _ping_redis(self) -> None:
        await self.redis.ping()

    async def _renew_database_connections(self) -> None:
        # Pooled connections opened before the outage point at a server that is gone: replace them
        # on their next use instead of failing one request each.
        await self.pool.expire_connections()

    async def close(self) -> None:
        for watch in self.watches.values():
            await watch.close()
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
