"""Saliency overlays: one PNG per photo and model version, drawn after the score."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from store.errors import not_found


async def get_saliency_png(conn: asyncpg.Connection, photo_id: uuid.UUID) -> bytes:
    """The overlay from the photo's latest scoring model."""
    png = await conn.fetchval(
        """SELECT sal.png FROM triage_saliency sal
             JOIN triage_photo_scores s USING (photo_id, model_version)
            WHERE sal.photo_id = $1 ORDER BY s.scored_at DESC LIMIT 1""",
        photo_id,
    )
    if png is None:
        raise not_found("saliency_not_ready", "No saliency overlay has been computed for this photo yet.")
    return png


async def store_saliency(conn: asyncpg.Connection, photo_id: uuid.UUID, model_version: str, png: bytes) -> None:
    await conn.execute(
        """INSERT INTO triage_saliency (photo_id, model_version, png) VALUES ($1, $2, $3)
           ON CONFLICT (photo_id, model_version) DO NOTHING""",
        photo_id,
        model_version,
        png,
    )


async def photos_missing_saliency(
    conn: asyncpg.Connection, model_version: str, limit: int, skip: Sequence[uuid.UUID] = ()
) -> list[dict[str, Any]]:
    """Photos scored by this model version that have no overlay yet (except `skip`), newest first."""
    rows = await conn.fetch(
        """SELECT p.id, p.consultation_id, p.image FROM triage_photo_scores s
             JOIN triage_photos p ON p.id = s.photo_id
            WHERE s.model_version = $1
              AND NOT EXISTS (SELECT 1 FROM triage_saliency sal
                               WHERE sal.photo_id = s.photo_id AND sal.model_version = s.model_version)
              AND NOT s.photo_id = ANY($3::uuid[])
            ORDER BY s.scored_at DESC LIMIT $2""",
        model_version,
        limit,
        list(skip),
    )
    return [dict(r) for r in rows]
