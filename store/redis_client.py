"""The Redis client (redis.asyncio), on a bounded pool that waits for a free connection."""

from __future__ import annotations

import redis.asyncio as redis

# How long a caller waits for a pooled connection before the request fails.
POOL_WAIT_SECONDS = 5


def create_redis(redis_url: str, max_connections: int = 64) -> redis.Redis:
    # redis-py's default pool raises once its limit is reached; a blocking pool makes a
    # burst of requests queue for a connection instead of failing.
    pool = redis.BlockingConnectionPool.from_url(
        redis_url, max_connections=max_connections, timeout=POOL_WAIT_SECONDS, health_check_interval=30
    )
    return redis.Redis(connection_pool=pool)
