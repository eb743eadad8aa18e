"""Triage's SQL: one named function per transaction over triage_photos, their scores and summaries."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from jax_models.bands import Bands
from store.errors import conflict, not_found
from triage.images import NormalisedPhoto
from triage.photo_gate import QualityReport, verdict_from
from triage.policy import ConsultationTriage, PhotoScore, deciding_photo

OnScored = Callable[[asyncpg.Connection, uuid.UUID, ConsultationTriage], Awaitable[None]]

# The first key of the two-part advisory lock that serialises writes to one consultation's photos.
_CONSULTATION_LOCK_SPACE = 0x54524947  # "TRIG"

_PHOTO_COLUMNS = """p.id, p.consultation_id, p.body_site, p.tag, p.sha256, p.source_format, p.width, p.height,
                    p.status, p.failure_reason, p.created_at, p.kind, p.quality, p.quality_problems"""


@dataclass(frozen=True)
class StoredPhoto:
    photo: dict[str, Any]
    duplicate: bool


@dataclass(frozen=True)
class PhotoResult:
    """One photo's outcome from the model: a prediction's fields, or the reason it failed."""

    photo_id: uuid.UUID
    consultation_id: uuid.UUID
    model_version: str
    p_malignant: float | None = None
    probabilities: dict[str, float] | None = None
    dx: str | None = None
    urgency: str | None = None
    batch_size: int = 1
    failure: str | None = None
    ood_score: float | None = None
    in_distribution: bool | None = None


async def _lock_consultation(conn: asyncpg.Connection, consultation_id: uuid.UUID) -> None:
    await conn.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2::uuid::text))", _CONSULTATION_LOCK_SPACE, consultation_id
    )


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
        await _lock_consultation(conn, consultation_id)
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


async def get_consultation_triage(conn: asyncpg.Connection, consultation_id: uuid.UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        """SELECT c.consultation_id, c.photo_id, c.model_version, c.urgency, c.p_malignant, c.scored_photos,
                  c.updated_at, c.trusted, c.gate, s.probabilities, s.dx
             FROM triage_consultation_scores c
             JOIN triage_photo_scores s ON s.photo_id = c.photo_id AND s.model_version = c.model_version
            WHERE c.consultation_id = $1""",
        consultation_id,
    )
    return dict(row) if row else None


async def photo_status_counts(conn: asyncpg.Connection, consultation_id: uuid.UUID) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT status, count(*) AS n FROM triage_photos WHERE consultation_id = $1 GROUP BY status", consultation_id
    )
    return {r["status"]: r["n"] for r in rows}


async def claim_photos_for_scoring_txn(
    conn: asyncpg.Connection, photo_ids: Sequence[uuid.UUID], model_version: str
) -> list[dict[str, Any]]:
    """Counts a delivery for each photo not yet scored by this model and returns it with its image.

    Photos already scored by this model version (a reclaimed job whose first worker got as far
    as the write) come back with `already_scored` set and no image, so the job is only acknowledged.
    """
    rows = await conn.fetch(
        """WITH wanted AS (SELECT unnest($1::uuid[]) AS id),
                bumped AS (
                    UPDATE triage_photos p SET attempts = p.attempts + 1
                      FROM wanted w
                     WHERE p.id = w.id
                       AND NOT EXISTS (SELECT 1 FROM triage_photo_scores s
                                        WHERE s.photo_id = p.id AND s.model_version = $2)
                 RETURNING p.id, p.consultation_id, p.attempts, p.image, p.status)
           SELECT w.id, b.consultation_id, b.attempts, b.image, b.status,
                  (b.id IS NULL AND p.id IS NOT NULL) AS already_scored, (p.id IS NULL) AS missing
             FROM wanted w
             LEFT JOIN bumped b ON b.id = w.id
             LEFT JOIN triage_photos p ON p.id = w.id""",
        list(photo_ids),
        model_version,
    )
    return [dict(r) for r in rows]


async def mark_photo_failed(conn: asyncpg.Connection, photo_id: uuid.UUID, reason: str) -> None:
    """A photo the model cannot score stays stored and visible; it no longer waits for a score."""
    await conn.execute(
        "UPDATE triage_photos SET status = 'failed', failure_reason = $2 WHERE id = $1 AND status <> 'scored'",
        photo_id,
        reason[:500],
    )


async def _insert_scores(conn: asyncpg.Connection, scored: Sequence[PhotoResult]) -> set[uuid.UUID]:
    """Inserts the scores not already written for their photo and model version; returns those photos."""
    rows = await conn.fetch(
        """INSERT INTO triage_photo_scores
               (photo_id, model_version, p_malignant, probabilities, dx, urgency, batch_size, ood_score,
                in_distribution)
           SELECT * FROM unnest($1::uuid[], $2::text[], $3::float8[], $4::jsonb[], $5::text[], $6::text[],
                                $7::int[], $8::float8[], $9::bool[])
           ON CONFLICT (photo_id, model_version) DO NOTHING RETURNING photo_id""",
        [r.photo_id for r in scored],
        [r.model_version for r in scored],
        [r.p_malignant for r in scored],
        [r.probabilities for r in scored],
        [r.dx for r in scored],
        [r.urgency for r in scored],
        [r.batch_size for r in scored],
        [r.ood_score for r in scored],
        [r.in_distribution for r in scored],
    )
    inserted = {row["photo_id"] for row in rows}
    await conn.execute(
        "UPDATE triage_photos SET status = 'scored', failure_reason = NULL WHERE id = ANY($1::uuid[])", list(inserted)
    )
    return inserted


async def _summarise_consultations(
    conn: asyncpg.Connection, changed: dict[uuid.UUID, str], bands: Bands
) -> list[ConsultationTriage]:
    """Each consultation's deciding photo under the model version that just scored it, stored."""
    rows = await conn.fetch(
        """SELECT p.consultation_id, s.photo_id, s.urgency, s.p_malignant, p.kind, p.quality_problems,
                  s.ood_score, s.in_distribution
             FROM unnest($1::uuid[], $2::text[]) AS c(consultation_id, model_version)
             JOIN triage_photos p ON p.consultation_id = c.consultation_id
             JOIN triage_photo_scores s ON s.photo_id = p.id AND s.model_version = c.model_version""",
        list(changed),
        list(changed.values()),
    )
    scores: dict[uuid.UUID, list[PhotoScore]] = {}
    for row in rows:
        scores.setdefault(row["consultation_id"], []).append(
            PhotoScore(row["photo_id"], row["urgency"], row["p_malignant"], verdict_from(dict(row)))
        )
    summaries = []
    for consultation_id, model_version in changed.items():
        top = deciding_photo(scores[consultation_id], bands)
        summaries.append(
            ConsultationTriage(
                consultation_id,
                top.urgency,
                top.p_malignant,
                model_version,
                top.photo_id,
                len(scores[consultation_id]),
                top.trusted,
                top.verdict.as_dict(),
            )
        )
    await conn.executemany(
        """INSERT INTO triage_consultation_scores
               (consultation_id, photo_id, model_version, urgency, p_malignant, scored_photos, trusted, gate)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (consultation_id) DO UPDATE
              SET photo_id = excluded.photo_id, model_version = excluded.model_version,
                  urgency = excluded.urgency, p_malignant = excluded.p_malignant,
                  scored_photos = excluded.scored_photos, trusted = excluded.trusted, gate = excluded.gate,
                  updated_at = now()""",
        [
            (
                t.consultation_id,
                t.photo_id,
                t.model_version,
                t.urgency,
                t.p_malignant,
                t.scored_photos,
                t.trusted,
                t.gate,
            )
            for t in summaries
        ],
    )
    return summaries


async def record_results_txn(
    conn: asyncpg.Connection, results: Sequence[PhotoResult], bands: Bands, on_scored: OnScored
) -> list[ConsultationTriage]:
    """Writes scores (once per photo and model version) and failures; re-summarises each consultation
    that gained a score and hands the summary to `on_scored` in the same transaction.

    Returns the summaries that changed; a result already written by another worker changes nothing.
    The callbacks come last: they may take locks (chat's audit chain) that are best held briefly.
    """
    async with conn.transaction():
        # One statement, in a fixed order, so that two workers' batches cannot deadlock.
        await conn.execute(
            """SELECT pg_advisory_xact_lock($1, hashtext(c::text))
                 FROM (SELECT DISTINCT unnest($2::uuid[]) AS c ORDER BY 1) ordered""",
            _CONSULTATION_LOCK_SPACE,
            [r.consultation_id for r in results],
        )
        for result in results:
            if result.failure is not None:
                await mark_photo_failed(conn, result.photo_id, result.failure)
        scored = [r for r in results if r.failure is None]
        inserted = await _insert_scores(conn, scored) if scored else set()
        changed = {r.consultation_id: r.model_version for r in scored if r.photo_id in inserted}
        summaries = await _summarise_consultations(conn, changed, bands) if changed else []
        for summary in summaries:
            await on_scored(conn, summary.consultation_id, summary)
    return summaries


async def store_saliency(conn: asyncpg.Connection, photo_id: uuid.UUID, model_version: str, png: bytes) -> None:
    await conn.execute(
        """INSERT INTO triage_saliency (photo_id, model_version, png) VALUES ($1, $2, $3)
           ON CONFLICT (photo_id, model_version) DO NOTHING""",
        photo_id,
        model_version,
        png,
    )


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
