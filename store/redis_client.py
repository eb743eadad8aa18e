"""The Redis client (redis.asyncio)."""
from __future__ import annotations

import redis.asyncio as redis


def create_redis(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=False, health_check_interval=30)
