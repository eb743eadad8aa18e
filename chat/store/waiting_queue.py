"""The queue's order (band, trusted score, wait, with ageing) and the queue as doctors and patients see it."""
from __future__ import annotations

import asyncpg

from auth.audit import AuditContext

BAND_RANK = {"urgent": 0, "soon": 1, "routine": 2}

# Effective rank: the band's rank minus one per ageing interval waited (it may go below 0).
EFFECTIVE_RANK = """((CASE c.urgency WHEN 'urgent' THEN 0 WHEN 'soon' THEN 1 ELSE 2 END)
    - floor(extract(epoch FROM now() - c.queued_at) / $1)::int)"""
# Within a band: the photo score only where the photo gate trusted it (an untrusted score ranks like no
# score at all, so it can never move a case down), then the longest wait.
QUEUE_ORDER = (f"{EFFECTIVE_RANK}, CASE WHEN c.score_trusted THEN c.p_malignant END DESC NULLS LAST, "
               "c.queued_at, c.id")


async def queue_rows(conn: asyncpg.Connection, ageing_s: int) -> list[asyncpg.Record]:
    """Every waiting case in queue order, with its effective rank and position."""
    return await conn.fetch(
        f"""SELECT c.id, c.patient_id, c.urgency, c.p_malignant, c.scored_at, c.body_site, c.symptoms,
                   c.description, c.queued_at, c.checklist_score, c.checklist_band, c.image_band,
                   c.score_trusted, c.gate,
                   {EFFECTIVE_RANK} AS effective_rank,
                   extract(epoch FROM now() - c.queued_at)::int AS waiting_seconds,
                   row_number() OVER (ORDER BY {QUEUE_ORDER}) AS position
            FROM consultations c WHERE c.state = 'waiting' ORDER BY position""",
        float(ageing_s))


async def mean_consultation_seconds(conn: asyncpg.Connection) -> float | None:
    return await conn.fetchval(
        """SELECT avg(extract(epoch FROM closed_at - assigned_at)) FROM (
               SELECT closed_at, assigned_at FROM consultations
               WHERE state = 'resolved' AND assigned_at IS NOT NULL ORDER BY closed_at DESC LIMIT 50) recent""")


async def record_queue_read(conn: asyncpg.Connection, ctx: AuditContext, size: int) -> None:
    await ctx.record(conn, "queue.read", "queue", None, {"size": size})
