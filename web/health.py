"""Liveness (/healthz: the process answers) and readiness (/readyz: PostgreSQL and Redis answer)."""
from __future__ import annotations

import asyncio

from aiohttp import web

from store.connections import Stores


def setup(app: web.Application, stores: Stores) -> None:
    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        checks = {"database": "ok", "redis": "ok"}
        try:
            async with asyncio.timeout(2):
                await stores.pool.fetchval("SELECT 1")
        except Exception as exc:  # any failure means not ready; say which
            checks["database"] = f"unavailable: {type(exc).__name__}"
        try:
            async with asyncio.timeout(2):
                await stores.redis.ping()
        except Exception as exc:
            checks["redis"] = f"unavailable: {type(exc).__name__}"
        ready = all(v == "ok" for v in checks.values())
        return web.json_response({"status": "ready" if ready else "not_ready", "checks": checks},
                                 status=200 if ready else 503)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
