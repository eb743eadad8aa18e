"""The model's results: claiming photos to score, writing scores and failures once, and each consultation's
summary (its deciding photo)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from jax_models.bands import Bands
from triage.photo_gate import verdict_from
from triage.policy import ConsultationTriage, PhotoScore, deciding_photo
from triage.store.locks import lock_consultations

OnScored = Callable[[asyncpg.Connection, uuid.UUID, ConsultationTriage], Awaitable[None]]


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
        await lock_consultations(conn, [r.consultation_id for r in results])
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
