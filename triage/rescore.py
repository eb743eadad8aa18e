"""`skindoc rescore`: run the stored photos of open consultations through another model version.

Photos are taken one consultation at a time (never split across model calls' transactions), so
each consultation's summary moves to the new version with all its photos at once.
"""

from __future__ import annotations

import itertools
import logging
import uuid
from collections.abc import Sequence

import asyncpg

from triage import scoring
from triage.policy import ConsultationTriage
from triage.store import photos as photo_store
from triage.store import scores as score_store
from triage.worker import QueueNotifier

log = logging.getLogger(__name__)


async def rescore_consultations(
    pool: asyncpg.Pool,
    classifier: scoring.Classifier,
    consultation_ids: Sequence[uuid.UUID],
    *,
    on_scored: score_store.OnScored,
    notifier: QueueNotifier | None,
) -> list[ConsultationTriage]:
    """Scores every photo of these consultations that `classifier`'s version has not scored; returns the
    consultations whose triage changed."""
    async with pool.acquire() as conn:
        rows = await photo_store.photos_to_rescore(conn, consultation_ids, classifier.version)
    largest = max(classifier.batch_sizes)
    changed: list[ConsultationTriage] = []
    chunk: list[dict] = []
    for _, photos in itertools.groupby(rows, key=lambda row: row["consultation_id"]):
        chunk += list(photos)
        if len(chunk) >= largest:
            changed += await _score_chunk(pool, classifier, chunk, on_scored)
            chunk = []
    if chunk:
        changed += await _score_chunk(pool, classifier, chunk, on_scored)
    if notifier is not None:
        for summary in changed:
            await notifier.queue_changed("rescored", summary.consultation_id)
    return changed


async def _score_chunk(
    pool: asyncpg.Pool, classifier: scoring.Classifier, rows: list[dict], on_scored: score_store.OnScored
) -> list[ConsultationTriage]:
    async with pool.acquire() as conn:
        images = await photo_store.load_photo_images(conn, [row["id"] for row in rows])
    photos = [scoring.PhotoToScore(r["id"], r["consultation_id"], r["image"]) for r in images]
    results = await scoring.predict_photos(classifier, photos)
    changed = await scoring.write_results(pool, classifier, results, on_scored)
    scored = {r.photo_id for r in results if r.failure is None}
    await scoring.store_saliency(pool, classifier, [p for p in photos if p.photo_id in scored])
    log.info(
        "rescored photos",
        extra={"photos": len(photos), "consultations": len(changed), "model_version": classifier.version},
    )
    return changed
