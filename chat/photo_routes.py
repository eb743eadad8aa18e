"""HTTP routes for a consultation's photos and triage: upload (multipart), list, image, thumbnail, saliency;
and the urgency bands every screen names (GET /api/v1/triage/bands).

Chat owns consultations and who may see them, so these routes live here: each one authorises
through `chat.access`, then calls triage. Photos never travel over Socket.IO. Every read of a
photo or of a score is written to the audit log.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from auth.authz import authenticate, refuse_unapproved_doctor
from auth.context import audit_context
from auth.principal import Principal
from chat.access import authorize_consultation
from chat.validation import BODY_SITES
from store import payloads
from store.connections import Stores
from store.errors import (
    DomainError,
    bad_request,
    conflict,
    forbidden,
    not_found,
    unprocessable,
)
from store.http_input import path_id
from triage import bands, intake, views
from triage.config import TriageConfig
from triage.store import photos as photo_store
from triage.store import saliency as saliency_store
from triage.store import scores as score_store

PHOTO_FIELD = "photo"
TEXT_FIELDS = ("body_site", "tag")
MAX_TEXT_FIELD_BYTES = 1024
READ_CHUNK_BYTES = 256 * 1024
OPEN_STATES = ("waiting", "active")


def _too_large(max_bytes: int) -> DomainError:
    return DomainError(
        413, "payload_too_large", f"The upload may be at most {max_bytes} bytes in all.", {"max_bytes": max_bytes}
    )


async def _read_part(part: aiohttp.BodyPartReader, budget: int, max_bytes: int) -> bytes:
    data = bytearray()
    while chunk := await part.read_chunk(READ_CHUNK_BYTES):
        data += chunk
        if len(data) > budget:
            raise _too_large(max_bytes)
    return bytes(data)


async def read_photo_upload(
    request: web.Request, max_bytes: int, max_files: int
) -> tuple[dict[str, Any], list[tuple[str, bytes]]]:
    """The text fields and the photo files of a multipart body, refused as soon as it exceeds `max_bytes`."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise _too_large(max_bytes)
    if request.content_type != "multipart/form-data":
        raise DomainError(
            415, "unsupported_media_type", "Send photos as multipart/form-data with one or more 'photo' file fields."
        )
    fields: dict[str, Any] = {}
    files: list[tuple[str, bytes]] = []
    budget = max_bytes
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, aiohttp.BodyPartReader):
                raise bad_request("malformed_multipart", "Nested multipart bodies are not accepted.")
            if part.name == PHOTO_FIELD:
                if len(files) == max_files:
                    raise conflict(
                        "too_many_photos", f"A consultation holds at most {max_files} photos.", max_photos=max_files
                    )
                data = await _read_part(part, budget, max_bytes)
                files.append((part.filename or f"photo-{len(files) + 1}", data))
            elif part.name in TEXT_FIELDS and part.name not in fields:
                raw = await _read_part(part, MAX_TEXT_FIELD_BYTES, max_bytes)
                fields[part.name] = raw.decode("utf-8", errors="strict").strip()
            else:
                raise unprocessable("unexpected_field", f"Unexpected form field {part.name!r}.", field=part.name or "")
            budget = max_bytes - sum(len(d) for _, d in files)
    except UnicodeDecodeError:
        raise unprocessable("invalid_field", "Text fields must be UTF-8.") from None
    except (ValueError, AssertionError, RuntimeError, aiohttp.ClientPayloadError, HttpProcessingError) as exc:
        # aiohttp's multipart reader raises these on a malformed body.
        # The exception's type, not its text, which may quote the body or name Python objects.
        raise bad_request(
            "malformed_multipart", f"The multipart body could not be read ({type(exc).__name__})."
        ) from None
    if not files:
        raise unprocessable("missing_field", "Attach at least one photo in a 'photo' field.", field=PHOTO_FIELD)
    return fields, files


def _audience(principal: Principal, consultation: Any) -> str:
    if principal.role == "patient":
        return "patient"
    return "assigned" if consultation["doctor_id"] == principal.user_id else "queue"


class PhotoRoutes:
    def __init__(self, stores: Stores, config: TriageConfig) -> None:
        self._stores = stores
        self._config = config
        # A full-size photo decodes to hundreds of megabytes: no more at once than there are CPUs to work on them.
        self._decoding = asyncio.Semaphore(os.cpu_count() or 2)
        # The configured checkpoint's bands, read once: a checkpoint changes only with a restart.
        self._bands = bands.document(bands.for_checkpoint(config.model_dir))

    def register_on(self, app: web.Application) -> None:
        app.router.add_post("/api/v1/consultations/{consultation_id}/photos", self.upload)
        app.router.add_get("/api/v1/consultations/{consultation_id}/photos", self.list_photos)
        app.router.add_get("/api/v1/consultations/{consultation_id}/triage", self.get_triage)
        app.router.add_get("/api/v1/photos/{photo_id}/image", self.get_image)
        app.router.add_get("/api/v1/photos/{photo_id}/thumbnail", self.get_thumbnail)
        app.router.add_get("/api/v1/photos/{photo_id}/saliency", self.get_saliency)
        app.router.add_get("/api/v1/triage/bands", self.get_bands)

    async def get_bands(self, request: web.Request) -> web.Response:
        """Names, order, thresholds and words of the urgency bands; any signed-in user (no patient data)."""
        await authenticate(request)
        return web.json_response(self._bands)

    async def upload(self, request: web.Request) -> web.Response:
        principal = await authenticate(request)
        consultation_id = path_id(request, "consultation_id")
        async with self._stores.pool.acquire() as conn:
            await self._authorize_upload(conn, principal, consultation_id)
        cfg = self._config
        fields, files = await read_photo_upload(request, cfg.max_upload_bytes, cfg.max_photos_per_consultation)
        body_site = payloads.get_choice(fields, "body_site", BODY_SITES)
        tag = payloads.get_choice(fields, "tag", intake.PHOTO_TAGS, required=False) if fields.get("tag") else None
        async with self._decoding:
            photos = await intake.normalise_uploads(files, cfg)
        async with self._stores.pool.acquire() as conn, conn.transaction():
            # Again inside the write: the case may have closed while the photos were being checked.
            await self._authorize_upload(conn, principal, consultation_id)
            stored = await intake.store_photos(conn, cfg, consultation_id, body_site, tag, photos)
            await audit_context(request).record(
                conn,
                "photo.upload",
                "consultation",
                consultation_id,
                {
                    "photo_ids": [str(s.photo["id"]) for s in stored if not s.duplicate],
                    "duplicates": sum(s.duplicate for s in stored),
                },
            )
        await intake.queue_jobs(self._stores.redis, cfg, consultation_id, stored, self._stores.report_outage)
        return web.json_response(
            {
                "photos": [
                    {**views.photo_view(s.photo, "patient"), "duplicate": s.duplicate, "warnings": list(p.warnings)}
                    for s, (p, _) in zip(stored, photos, strict=True)
                ],
            },
            status=201,
        )

    async def _authorize_upload(self, conn, principal: Principal, consultation_id: uuid.UUID) -> None:
        consultation = await authorize_consultation(conn, principal, consultation_id, action="upload")
        if consultation["state"] not in OPEN_STATES:
            raise conflict("wrong_state", "Photos can only be added to a waiting or active consultation.")

    async def list_photos(self, request: web.Request) -> web.Response:
        _, audience, rows = await self._summary_read(request, "photo.list", photo_store.list_photos)
        return web.json_response({"photos": [views.photo_view(row, audience) for row in rows]})

    async def get_triage(self, request: web.Request) -> web.Response:
        async def summary_and_counts(conn, consultation_id: uuid.UUID) -> tuple:
            return (
                await score_store.get_consultation_triage(conn, consultation_id),
                await photo_store.photo_status_counts(conn, consultation_id),
            )

        consultation, audience, (summary, counts) = await self._summary_read(request, "triage.read", summary_and_counts)
        return web.json_response(views.triage_view(summary, counts, audience, dict(consultation)))

    async def _summary_read(
        self, request: web.Request, action: str, read: Callable[[Any, uuid.UUID], Awaitable[Any]]
    ) -> tuple[Any, str, Any]:
        """A read of the path's consultation at `summary` access, audited in the same transaction.

        Returns the consultation, the caller's audience for it and what `read` returned.
        """
        principal = await authenticate(request)
        consultation_id = path_id(request, "consultation_id")
        async with self._stores.pool.acquire() as conn, conn.transaction():
            consultation = await authorize_consultation(conn, principal, consultation_id, action="summary")
            result = await read(conn, consultation_id)
            await audit_context(request).record(conn, action, "consultation", consultation_id)
        return consultation, _audience(principal, consultation), result

    async def get_image(self, request: web.Request) -> web.Response:
        return await self._photo_bytes(request, "image")

    async def get_thumbnail(self, request: web.Request) -> web.Response:
        return await self._photo_bytes(request, "thumbnail")

    async def get_saliency(self, request: web.Request) -> web.Response:
        return await self._photo_bytes(request, "saliency")

    async def _photo_bytes(self, request: web.Request, variant: str) -> web.Response:
        principal = await authenticate(request)
        refuse_unapproved_doctor(principal)  # before the photo is looked up: its existence stays unknown
        photo_id = path_id(request, "photo_id")
        async with self._stores.pool.acquire() as conn, conn.transaction():
            consultation_id = await photo_store.get_photo_consultation(conn, photo_id)
            consultation = await self._authorize_photo_read(conn, principal, consultation_id, variant)
            if variant == "saliency":
                body = await saliency_store.get_saliency_png(conn, photo_id)
            else:
                body = await photo_store.get_photo_bytes(conn, photo_id, thumbnail=variant == "thumbnail")
            await audit_context(request).record(
                conn, f"photo.read.{variant}", "photo", photo_id, {"consultation_id": str(consultation["id"])}
            )
        # Cache-Control: no-store and nosniff come with every API response (web.headers).
        return web.Response(body=body, content_type="image/png" if variant == "saliency" else "image/jpeg")

    async def _authorize_photo_read(self, conn, principal: Principal, consultation_id: uuid.UUID, variant: str):
        try:
            consultation = await authorize_consultation(conn, principal, consultation_id, action="summary")
        except DomainError as exc:
            if exc.code == "consultation_not_found":
                # The photo's id must not reveal that it exists to someone who may not see it.
                raise not_found("photo_not_found", "No such photo.") from None
            raise
        if variant == "saliency" and _audience(principal, consultation) != "assigned":
            raise forbidden("forbidden", "Only the consultation's assigned doctor sees the saliency overlay.")
        if variant == "image" and _audience(principal, consultation) == "queue":
            # A waiting case shows doctors in the queue what they need to choose: thumbnails.
            raise forbidden(
                "forbidden", "Only the consultation's assigned doctor sees the full-size photo; take the case first."
            )
        return consultation
