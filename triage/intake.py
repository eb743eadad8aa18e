"""Accepting photos for a consultation: check and normalise every one, measure its quality (the photo gate),
store them, queue a job per new photo. A photo of poor quality is stored all the same: the gate only
decides whether its score may be trusted, and the patient was already offered a retake.

All photos of a request are checked before any is stored, so one bad file rejects the request
and leaves nothing behind. Callers authorise first: triage knows nothing of who may upload.
"""

from __future__ import annotations

import asyncio
import io
import logging
import uuid
from collections.abc import Callable, Sequence

import asyncpg
import redis.asyncio as redis
from PIL import Image

from store.errors import DomainError
from triage import jobs, photo_gate
from triage.config import TriageConfig
from triage.images import NormalisedPhoto, normalise_photo
from triage.store import photos as photo_store

log = logging.getLogger(__name__)

PHOTO_TAGS = ("dermoscopic", "close_up", "overview")


CheckedPhoto = tuple[NormalisedPhoto, photo_gate.QualityReport]


def _quality(photo: NormalisedPhoto) -> photo_gate.QualityReport:
    # Measured on the thumbnail: the measures work on a 128-px square, which the thumbnail still exceeds.
    with Image.open(io.BytesIO(photo.thumbnail)) as thumbnail:
        return photo_gate.check_quality(thumbnail)


def _normalise_all(uploads: Sequence[tuple[str, bytes]], config: TriageConfig) -> list[CheckedPhoto]:
    photos = []
    for index, (filename, data) in enumerate(uploads):
        try:
            photo = normalise_photo(data, max_pixels=config.max_pixels, min_side=config.min_side)
        except DomainError as exc:
            # Say which file of a multi-photo upload was refused.
            exc.extra.update({"photo_index": index, "filename": filename[:200]})
            raise
        photos.append((photo, _quality(photo)))
    return photos


async def normalise_uploads(uploads: Sequence[tuple[str, bytes]], config: TriageConfig) -> list[CheckedPhoto]:
    """Decoding is CPU work: it runs in a thread so other requests keep being served."""
    return await asyncio.to_thread(_normalise_all, uploads, config)


async def store_photos(
    conn: asyncpg.Connection,
    config: TriageConfig,
    consultation_id: uuid.UUID,
    body_site: str,
    tag: str | None,
    photos: Sequence[CheckedPhoto],
) -> list[photo_store.StoredPhoto]:
    """Stores the photos, within the per-consultation cap; one already stored comes back as a duplicate."""
    return await photo_store.add_photos_txn(
        conn, consultation_id, body_site, tag, photo_gate.kind_of(tag), photos, config.max_photos_per_consultation
    )


async def queue_jobs(
    client: redis.Redis,
    config: TriageConfig,
    consultation_id: uuid.UUID,
    stored: Sequence[photo_store.StoredPhoto],
    report_outage: Callable[[BaseException], str | None] = lambda exc: None,
) -> None:
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
