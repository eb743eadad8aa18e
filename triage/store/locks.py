"""The advisory locks that serialise writes to one consultation's photos and their scores."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

# The first key of the two-part advisory lock that serialises writes to one consultation's photos.
_CONSULTATION_LOCK_SPACE = 0x54524947  # "TRIG"


async def lock_consultation(conn: asyncpg.Connection, consultation_id: uuid.UUID) -> None:
    await lock_consultations(conn, [consultation_id])


async def lock_consultations(conn: asyncpg.Connection, consultation_ids: Sequence[uuid.UUID]) -> None:
    # One statement, in a fixed order, so that two workers' batches cannot deadlock.
    await conn.execute(
        """SELECT pg_advisory_xact_lock($1, hashtext(c::text))
             FROM (SELECT DISTINCT unnest($2::uuid[]) AS c ORDER BY 1) ordered""",
        _CONSULTATION_LOCK_SPACE,
        list(consultation_ids),
    )
