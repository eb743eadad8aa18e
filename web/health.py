"""Liveness (/healthz: the process answers) and readiness (/readyz: what this node can do right now).

A web node is ready (200) while PostgreSQL and Redis answer: chat, accounts and uploads work.
Scoring is reported beside it from the triage workers' heartbeats (ok / degraded / down, with
the age of the last one): a node whose workers are gone stays ready for chat, says that scoring
is not, and answers 200 with status "degraded". Photos uploaded meanwhile wait in PostgreSQL
and are scored once a worker is back.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from store.connections import Stores
from triage import heartbeat
from triage.config import TriageConfig

CHECK_TIMEOUT_S = 2


async def _check(probe) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await probe()
    except Exception as exc:  # any failure means not ready; say which
        return f"unavailable: {type(exc).__name__}"
    return "ok"


async def _triage_check(stores: Stores, config: TriageConfig) -> dict[str, Any]:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            beats = await heartbeat.read_all(stores.redis, config.stream)
    except Exception:
        return {"status": "unknown"}  # the heartbeats live in Redis
    return heartbeat.triage_health(beats, config.heartbeat_stale_s)


def setup(app: web.Application, stores: Stores, triage_config: TriageConfig) -> None:
    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        database, redis, triage = await asyncio.gather(
            _check(lambda: stores.pool.fetchval("SELECT 1")),
            _check(stores.redis.ping),
            _triage_check(stores, triage_config),
        )
        stores_ok = database == "ok" and redis == "ok"
        scoring_ok = triage["status"] == "ok"
        status = "not_ready" if not stores_ok else "ready" if scoring_ok else "degraded"
        body = {
            "status": status,
            "checks": {"database": database, "redis": redis, "triage": triage},
            "ready_for": (["api", "chat"] if stores_ok else []) + (["scoring"] if stores_ok and scoring_ok else []),
        }
        return web.json_response(body, status=200 if stores_ok else 503)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
