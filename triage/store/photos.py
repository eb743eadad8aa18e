"""Stored photos: intake under the per-consultation cap, reads, and the photos a job or a model still owes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from store.errors import conflict, not_found
from triage.images import NormalisedPhoto
from triage.photo_gate import QualityReport
from triage.store.locks import lock_consultation

_PHOTO_COLUMNS = """p.id, p.consultation_id, p.body_site, p.tag, p.sha256, p.source_format, p.width, p.height,
                    p.status, p.failure_reason, p.created_at, p.kind, p.quality, p.quality_problems"""


@dataclass(frozen=True)
class StoredPhoto:
    photo: dict[str, Any]
    duplicate: bool


async def add_photos_txn(
    conn: asyncpg.Connection,
    consultation_id: uuid.UUID,
    body_site: str,
    tag: str | None,
    kind: str,
    checked: Sequence[tuple[NormalisedPhoto, QualityReport]],
    max_photos: int,
) -> list[StoredPhoto]:
    """Stores new photos with their quality (an identical one already stored is returned as a duplicate),
    within the cap."""
    quality = {photo.sha256: report for photo, report in checked}
    photos = [photo for photo, _ in checked]
    async with conn.transaction():
        await lock_consultation(conn, consultation_id)
        stored_count = await conn.fetchval(
            "SELECT count(*) FROM triage_photos WHERE consultation_id = $1", consultation_id
        )
        existing = {
            r["sha256"]: dict(r)
            for r in await conn.fetch(
                f"SELECT {_PHOTO_COLUMNS} FROM triage_photos p"
                " WHERE p.consultation_id = $1 AND p.sha256 = ANY($2::text[])",
                consultation_id,
                [p.sha256 for p in photos],
            )
        }
        fresh = {p.sha256: p for p in photos if p.sha256 not in existing}
        if stored_count + len(fresh) > max_photos:
            raise conflict(
                "too_many_photos",
                f"A consultation holds at most {max_photos} photos; it has {stored_count}.",
                max_photos=max_photos,
                stored=stored_count,
            )
        stored = {}
        for photo in fresh.values():
            row = await conn.fetchrow(
                f"""INSERT INTO triage_photos AS p (consultation_id, body_site, tag, sha256, source_format,
                                                    width, height, image, thumbnail, kind, quality, quality_problems)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING {_PHOTO_COLUMNS}""",
                consultation_id,
                body_site,
                tag,
                photo.sha256,
                photo.source_format,
                photo.width,
                photo.height,
                photo.image,
                photo.thumbnail,
                kind,
                quality[photo.sha256].measures,
                list(quality[photo.sha256].problems),
            )
            stored[photo.sha256] = dict(row)
    result, returned = [], set()
    for photo in photos:
        if photo.sha256 in existing:
            result.append(StoredPhoto(existing[photo.sha256], True))
        else:
            # The same photo twice in one upload: stored once, the second copy is a duplicate.
            result.append(StoredPhoto(stored[photo.sha256], photo.sha256 in returned))
            returned.add(photo.sha256)
    return result


async def list_photos(conn: asyncpg.Connection, consultation_id: uuid.UUID) -> list[dict[str, Any]]:
    """A consultation's photos, oldest first, each with its latest score (if any)."""
    rows = await conn.fetch(
        f"""SELECT {_PHOTO_COLUMNS}, s.model_version, s.p_malignant, s.probabilities, s.dx, s.urgency,
                   s.scored_at, s.ood_score, s.in_distribution, (sal.photo_id IS NOT NULL) AS has_saliency
              FROM triage_photos p
              LEFT JOIN LATERAL (SELECT * FROM triage_photo_scores s WHERE s.photo_id = p.id
                                 ORDER BY s.scored_at DESC LIMIT 1) s ON true
              LEFT JOIN triage_saliency sal ON sal.photo_id = p.id AND sal.model_version = s.model_version
             WHERE p.consultation_id = $1
             ORDER BY p.created_at, p.id""",
        consultation_id,
    )
    return [dict(r) for r in rows]


async def get_photo_consultation(conn: asyncpg.Connection, photo_id: uuid.UUID) -> uuid.UUID:
    consultation_id = await conn.fetchval("SELECT consultation_id FROM triage_photos WHERE id = $1", photo_id)
    if consultation_id is None:
        raise not_found("photo_not_found", "No such photo.")
    return consultation_id


async def get_photo_bytes(conn: asyncpg.Connection, photo_id: uuid.UUID, *, thumbnail: bool) -> bytes:
    column = "thumbnail" if thumbnail else "image"
    data = await conn.fetchval(f"SELECT {column} FROM triage_photos WHERE id = $1", photo_id)
    if data is None:
        raise not_found("photo_not_found", "No such photo.")
    return data


async def photo_status_counts(conn: asyncpg.Connection, consultation_id: uuid.UUID) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT status, count(*) AS n FROM triage_photos WHERE consultation_id = $1 GROUP BY status", consultation_id
    )
    return {r["status"]: r["n"] for r in rows}


async def pending_photos(conn: asyncpg.Connection, older_than_seconds: float) -> list[dict[str, Any]]:
    """Photos still waiting for a first score after a while: their job may have been lost with Redis."""
    rows = await conn.fetch(
        """SELECT id, consultation_id FROM triage_photos
            WHERE status = 'pending' AND created_at < now() - make_interval(secs => $1)
            ORDER BY created_at""",
        older_than_seconds,
    )
    return [dict(r) for r in rows]


async def load_photo_images(conn: asyncpg.Connection, photo_ids: Sequence[uuid.UUID]) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT id, consultation_id, image FROM triage_photos WHERE id = ANY($1::uuid[])", list(photo_ids)
    )
    return [dict(r) for r in rows]


async def photos_to_rescore(
    conn: asyncpg.Connection, consultation_ids: Sequence[uuid.UUID], model_version: str
) -> list[dict[str, Any]]:
    """The photos of these consultations that this model version has not scored, grouped by consultation."""
    rows = await conn.fetch(
        """SELECT p.id, p.consultation_id FROM triage_photos p
            WHERE p.consultation_id = ANY($1::uuid[])
              AND NOT EXISTS (SELECT 1 FROM triage_photo_scores s
                               WHERE s.photo_id = p.id AND s.model_version = $2)
            ORDER BY p.consultation_id, p.created_at""",
        list(consultation_ids),
        model_version,
    )
    return [dict(r) for r in rows]


async def photos_behind_version(
    conn: asyncpg.Connection, consultation_ids: Sequence[uuid.UUID], model_version: str
) -> list[dict[str, Any]]:
    """Photos of these consultations with a score from another model version but none from this one."""
    rows = await conn.fetch(
        """SELECT p.id, p.consultation_id FROM triage_photos p
            WHERE p.consultation_id = ANY($1::uuid[]) AND p.status = 'scored'
              AND NOT EXISTS (SELECT 1 FROM triage_photo_scores s
                               WHERE s.photo_id = p.id AND s.model_version = $2)""",
        list(consultation_ids),
        model_version,
    )
    return [dict(r) for r in rows]
