"""The reconciler: PostgreSQL says which photos await a score, Redis only carries the work.

A photo can be pending in the database with no job in the stream: Redis restarted without
its data, the upload's XADD failed while Redis was down, or the process died between the
photo's commit and its job. Every round re-queues exactly those photos. A job in the stream,
delivered or not, counts as live (acknowledged jobs are deleted), so a photo is never queued
twice by the reconciler; and a duplicate from any other cause is harmless, since a photo is
scored once per model version.
"""

from __future__ import annotations

import logging

import asyncpg
import redis.asyncio as redis

from triage import jobs
from triage.store import photos as photo_store

log = logging.getLogger(__name__)

# Session advisory lock: one reconciler at a time across every worker, so two never queue the same photo.
_RECONCILE_LOCK = 0x54524743  # "TRGC"


async def requeue_lost_photos(pool: asyncpg.Pool, client: redis.Redis, stream: str, *, grace_s: float) -> int:
    """Queues a job for every photo pending longer than `grace_s` without one; returns how many.

    The grace period covers an upload between its commit and its XADD.
    """
    async with pool.acquire() as conn:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _RECONCILE_LOCK):
            return 0  # another worker is reconciling right now
        try:
            pending = await photo_store.pending_photos(conn, grace_s)
            if not pending:
                return 0
            queued = await jobs.queued_photo_ids(client, stream)
            lost = [(row["id"], row["consultation_id"]) for row in pending if row["id"] not in queued]
            await jobs.enqueue_photo_jobs(client, stream, lost)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _RECONCILE_LOCK)
    if lost:
        log.warning("re-queued photos that had no triage job", extra={"count": len(lost)})
    return len(lost)
