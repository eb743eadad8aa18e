"""The queue's order (band, trusted score, wait, with ageing) and the queue as doctors and patients see it."""

from __future__ import annotations

import asyncpg

from auth.audit import AuditContext
from chat.store.case_scores import SCORE_COLUMNS, SCORE_JOIN
from triage import bands

# Effective rank: the band's rank (triage/bands.py) minus one per ageing interval waited ($1 seconds; it may
# go below 0). Within a band: the photo score (case_scores.SCORE_JOIN) only where the photo gate trusted it
# (an untrusted score ranks like no score at all, so it can never move a case down), then the longest wait.
EFFECTIVE_RANK = f"({bands.rank_sql('c.urgency')} - floor(extract(epoch FROM now() - c.queued_at) / $1)::int)"
QUEUE_ORDER = f"{EFFECTIVE_RANK}, CASE WHEN s.trusted THEN s.p_malignant END DESC NULLS LAST, c.queued_at, c.id"


async def queue_rows(conn: asyncpg.Connection, ageing_s: int) -> list[asyncpg.Record]:
    """Every waiting case in queue order, with its effective rank and position."""
    return await conn.fetch(
        f"""SELECT c.id, c.patient_id, c.urgency, c.body_site, c.symptoms, c.description, c.queued_at,
                   c.checklist_score, c.checklist_band, {SCORE_COLUMNS},
                   {EFFECTIVE_RANK} AS effective_rank,
                   extract(epoch FROM now() - c.queued_at)::int AS waiting_seconds,
                   row_number() OVER (ORDER BY {QUEUE_ORDER}) AS position
            FROM consultations c {SCORE_JOIN} WHERE c.state = 'waiting' ORDER BY position""",
        float(ageing_s),
    )


async def mean_consultation_seconds(conn: asyncpg.Connection) -> float | None:
    return await conn.fetchval(
        """SELECT avg(extract(epoch FROM closed_at - assigned_at)) FROM (
               SELECT closed_at, assigned_at FROM consultations
               WHERE state = 'resolved' AND assigned_at IS NOT NULL ORDER BY closed_at DESC LIMIT 50) recent"""
    )


async def record_queue_read(conn: asyncpg.Connection, ctx: AuditContext, size: int) -> None:
    await ctx.record(conn, "queue.read", "queue", None, {"size": size})
