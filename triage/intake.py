"""Accepting photos for a consultation: check and normalise every one, store them, queue a job per new photo.

All photos of a request are checked before any is stored, so one bad file rejects the request
and leaves nothing behind. Callers authorise first: triage knows nothing of who may upload.
"""
from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence

import asyncpg
import redis.asyncio as redis

from store.errors import DomainError
from triage import jobs, store
from triage.config import TriageConfig
from triage.images import NormalisedPhoto, normalise_photo

log = logging.getLogger(__name__)

PHOTO_TAGS = ("dermoscopic", "close_up", "overview")


def _normalise_all(uploads: Sequence[tuple[str, bytes]], config: TriageConfig) -> list[NormalisedPhoto]:
    photos = []
    for index, (filename, data) in enumerate(uploads):
        try:
            photos.append(normalise_photo(data, max_pixels=config.max_pixels, min_side=config.min_side))
        except DomainError as exc:
            # Say which file of a multi-photo upload was refused.
            exc.extra.update({"photo_index": index, "filename": filename[:200]})
            raise
    return photos


async def normalise_uploads(uploads: Sequence[tuple[str, bytes]], config: TriageConfig) -> list[NormalisedPhoto]:
    """Decoding is CPU work: it runs in a thread so other requests keep being served."""
    return await asyncio.to_thread(_normalise_all, uploads, config)


async def store_photos(conn: asyncpg.Connection, config: TriageConfig, consultation_id: uuid.UUID, body_site: str,
                       tag: str | None, photos: Sequence[NormalisedPhoto]) -> list[store.StoredPhoto]:
    """Stores the photos, within the per-consultation cap; one already stored comes back as a duplicate."""
    return await store.add_photos_txn(conn, consultation_id, body_site, tag, photos,
                                      config.max_photos_per_consultation)


async def queue_jobs(client: redis.Redis, config: TriageConfig, consultation_id: uuid.UUID,
                     stored: Sequence[store.StoredPhoto],
                     report_outage: Callable[[BaseException], str | None] = lambda exc: None) -> None:
    """Queues a triage job for each photo stored now; call it after the photos' transaction commits.

    A store outage goes to `report_outage` (logged once per outage, not per upload).
    """
    fresh = [(s.photo["id"], consultation_id) for s in stored if not s.duplicate]
    try:
        await jobs.enqueue_photo_jobs(client, config.stream, fresh)
    except Exception as exc:
        # The photos are safely stored and stay "awaiting score"; the reconciler queues them.
        if report_outage(exc) is None:
            log.exception("could not queue triage jobs", extra={"consultation_id": str(consultation_id)})
