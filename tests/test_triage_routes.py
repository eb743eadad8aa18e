"""Photo upload and reads over HTTP: every bad input typed and without trace, metadata gone, who may read what."""

from __future__ import annotations

import asyncio
import io
import uuid
from dataclasses import replace

import aiohttp
import pytest
from PIL import Image

from tests import test_chat_support as cs
from tests import test_triage_support as ti
from web.app import SETTINGS, STORES, create_app


def form(
    *photos: bytes, body_site: str | None = "back", tag: str | None = None, extra: dict[str, str] | None = None
) -> aiohttp.FormData:
    data = aiohttp.FormData(default_to_multipart=True)
    if body_site is not None:
        data.add_field("body_site", body_site)
    if tag is not None:
        data.add_field("tag", tag)
    for name, value in (extra or {}).items():
        data.add_field(name, value)
    for index, photo in enumerate(photos):
        data.add_field("photo", photo, filename=f"lesion-{index}.jpg", content_type="image/jpeg")
    return data


def photos_url(consultation_id: uuid.UUID) -> str:
    return f"/api/v1/consultations/{consultation_id}/photos"


@pytest.fixture
async def client(aiohttp_client, settings):
    """The app with a Socket.IO channel of its own: pub/sub is shared by every test run on this Redis."""
    return await aiohttp_client(create_app(cs.chat_settings(settings)))


@pytest.fixture
async def case(client):
    """A patient with a waiting consultation."""
    patient = await ti.account(client, "patient")
    consultation_id = await ti.consultation(client.app[STORES].pool, patient)
    return patient, consultation_id


async def nothing_stored(client, db) -> None:
    assert await db.fetchval("SELECT count(*) FROM triage_photos") == 0
    assert await client.app[STORES].redis.xlen(_stream(client)) == 0


def _stream(client) -> str:
    return client.app[SETTINGS].triage.stream


async def expect_problem(response, status: int, code: str) -> dict:
    body = await response.json()
    assert response.status == status, body
    assert response.content_type == "application/problem+json"
    assert body["code"] == code, body
    return body


BAD_UPLOADS = [
    ("gif", lambda: form(ti.encode(ti.lesion(), "GIF")), 415, "unsupported_image_type"),
    ("pdf", lambda: form(b"%PDF-1.7\n" + b"0" * 5000), 415, "unsupported_image_type"),
    ("empty", lambda: form(b""), 422, "empty_file"),
    ("truncated", lambda: form(ti.jpeg()[:5000]), 422, "corrupt_image"),
    ("animated", lambda: form(ti.animated("WEBP")), 422, "animated_image"),
    ("too small", lambda: form(ti.jpeg(120, 90)), 422, "image_too_small"),
    ("bomb", lambda: form(ti.decompression_bomb_png()), 422, "image_too_many_pixels"),
    ("one bad among good", lambda: form(ti.jpeg(seed=1), ti.jpeg()[:3000]), 422, "corrupt_image"),
    ("no photo", lambda: form(), 422, "missing_field"),
    ("no body site", lambda: form(ti.jpeg(), body_site=None), 422, "missing_field"),
    ("unknown body site", lambda: form(ti.jpeg(), body_site="elbowpit"), 422, "invalid_field"),
    ("unknown tag", lambda: form(ti.jpeg(), tag="selfie"), 422, "invalid_field"),
    ("unexpected field", lambda: form(ti.jpeg(), extra={"gps": "51.5,-0.1"}), 422, "unexpected_field"),
    ("seven photos", lambda: form(*(ti.jpeg(300, 300, seed=i) for i in range(7))), 409, "too_many_photos"),
]


@pytest.mark.parametrize("name, make_form, status, code", BAD_UPLOADS, ids=[b[0] for b in BAD_UPLOADS])
async def test_bad_upload_is_typed_and_leaves_nothing(client, db, case, name, make_form, status, code):
    patient, consultation_id = case
    response = await client.post(photos_url(consultation_id), data=make_form(), headers=patient.headers)
    await expect_problem(response, status, code)
    await nothing_stored(client, db)


async def test_not_multipart_is_refused(client, db, case):
    patient, consultation_id = case
    response = await client.post(photos_url(consultation_id), json={"photo": "aGVsbG8="}, headers=patient.headers)
    await expect_problem(response, 415, "unsupported_media_type")
    await nothing_stored(client, db)


async def test_body_over_the_cap_is_refused(aiohttp_client, settings, db):
    small = replace(cs.chat_settings(settings), triage=replace(settings.triage, max_upload_bytes=100_000))
    client = await aiohttp_client(create_app(small))
    patient = await ti.account(client, "patient")
    consultation_id = await ti.consultation(client.app[STORES].pool, patient)
    big = ti.noise_png(300, 300)
    assert len(big) > 200_000
    response = await client.post(photos_url(consultation_id), data=form(big), headers=patient.headers)
    await expect_problem(response, 413, "payload_too_large")

    # Sent chunked, with no declared length: the cap holds while reading.
    boundary = "triage-test-boundary"
    body = (
        (
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"body_site\"\r\n\r\nback\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"a.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n"
        ).encode()
        + big
        + f"\r\n--{boundary}--\r\n".encode()
    )

    async def chunked():
        for start in range(0, len(body), 32_768):
            yield body[start : start + 32_768]

    response = await client.post(
        photos_url(consultation_id),
        data=chunked(),
        headers={**patient.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    await expect_problem(response, 413, "payload_too_large")
    await nothing_stored(client, db)


async def test_who_may_upload(client, db, case):
    patient, consultation_id = case
    stranger = await ti.account(client, "patient")
    doctor = await ti.account(client, "doctor")
    response = await client.post(photos_url(consultation_id), data=form(ti.jpeg()))
    await expect_problem(response, 401, "missing_token")
    response = await client.post(photos_url(consultation_id), data=form(ti.jpeg()), headers=stranger.headers)
    await expect_problem(response, 404, "consultation_not_found")
    response = await client.post(photos_url(consultation_id), data=form(ti.jpeg()), headers=doctor.headers)
    await expect_problem(response, 403, "forbidden")
    response = await client.post(photos_url(uuid.uuid4()), data=form(ti.jpeg()), headers=patient.headers)
    await expect_problem(response, 404, "consultation_not_found")
    await nothing_stored(client, db)


async def test_upload_strips_gps_applies_orientation_and_queues_one_job(client, db, case):
    patient, consultation_id = case
    response = await client.post(
        photos_url(consultation_id),
        data=form(ti.jpeg_with_gps_and_orientation(), tag="close_up"),
        headers=patient.headers,
    )
    assert response.status == 201, await response.text()
    [photo] = (await response.json())["photos"]
    assert photo["duplicate"] is False and photo["warnings"] == []
    assert (photo["width"], photo["height"], photo["tag"], photo["status"]) == (600, 900, "close_up", "pending")
    assert await client.app[STORES].redis.xlen(_stream(client)) == 1

    response = await client.get(photo["image_url"], headers=patient.headers)
    assert response.status == 200 and response.content_type == "image/jpeg"
    data = await response.read()
    image = Image.open(io.BytesIO(data))
    assert image.size == (600, 900)
    assert not image.getexif() and not image.getexif().get_ifd(ti.GPS_TAG)
    assert b"PhoneMaker" not in data
    stored = await db.fetchval("SELECT image FROM triage_photos WHERE id = $1", uuid.UUID(photo["id"]))
    assert b"Exif" not in stored[:4096]


async def test_same_photo_twice_is_one_photo_and_one_job(client, db, case):
    patient, consultation_id = case
    first = await client.post(photos_url(consultation_id), data=form(ti.jpeg(171, 128)), headers=patient.headers)
    assert first.status == 201
    body = await first.json()
    assert body["photos"][0]["warnings"], "a dermoscopy crop is accepted with a warning about the guideline size"
    again = await client.post(photos_url(consultation_id), data=form(ti.jpeg(171, 128)), headers=patient.headers)
    assert again.status == 201
    [photo] = (await again.json())["photos"]
    assert photo["duplicate"] is True and photo["id"] == body["photos"][0]["id"]
    assert await db.fetchval("SELECT count(*) FROM triage_photos") == 1
    assert await client.app[STORES].redis.xlen(_stream(client)) == 1


async def test_photo_cap_counts_stored_photos(client, db, case):
    patient, consultation_id = case
    response = await client.post(
        photos_url(consultation_id), data=form(*(ti.jpeg(300, 300, seed=i) for i in range(6))), headers=patient.headers
    )
    assert response.status == 201
    response = await client.post(
        photos_url(consultation_id), data=form(ti.jpeg(300, 300, seed=99)), headers=patient.headers
    )
    await expect_problem(response, 409, "too_many_photos")
    assert await db.fetchval("SELECT count(*) FROM triage_photos") == 6
    assert await client.app[STORES].redis.xlen(_stream(client)) == 6


async def test_photo_reads_are_authorised_and_audited(client, db, case):
    patient, consultation_id = case
    pool = client.app[STORES].pool
    response = await client.post(photos_url(consultation_id), data=form(ti.jpeg()), headers=patient.headers)
    [photo] = (await response.json())["photos"]
    stranger = await ti.account(client, "patient")
    queue_doctor = await ti.account(client, "doctor")
    assigned_doctor = await ti.account(client, "doctor")

    async def status(url, who) -> int:
        return (await client.get(url, headers=who.headers)).status

    image, thumb = photo["image_url"], photo["thumbnail_url"]
    saliency = f"/api/v1/photos/{photo['id']}/saliency"
    assert await status(image, patient) == 200
    assert await status(thumb, patient) == 200
    assert await status(image, stranger) == 404
    assert await status(f"/api/v1/photos/{uuid.uuid4()}/image", patient) == 404
    # Waiting: any approved doctor may look at it from the queue, but the overlay is the assigned doctor's.
    assert await status(thumb, queue_doctor) == 200
    assert await status(saliency, queue_doctor) == 403
    assert await status(saliency, patient) == 403

    await ti.assign(pool, consultation_id, assigned_doctor.user_id)
    assert await status(thumb, queue_doctor) == 404
    assert await status(image, assigned_doctor) == 200
    # No overlay exists until the worker has scored the photo.
    assert await status(saliency, assigned_doctor) == 404

    rows = await db.fetch(
        "SELECT actor_id, action FROM audit_log WHERE subject_type = 'photo' AND subject_id = $1 ORDER BY id",
        photo["id"],
    )
    reads = [(r["actor_id"], r["action"]) for r in rows]
    assert (patient.user_id, "photo.read.image") in reads
    assert (patient.user_id, "photo.read.thumbnail") in reads
    assert (queue_doctor.user_id, "photo.read.thumbnail") in reads
    assert (assigned_doctor.user_id, "photo.read.image") in reads
    assert not any(actor == stranger.user_id for actor, _ in reads), "a refused read reads nothing"


async def test_patient_triage_view_before_scoring(client, case):
    patient, consultation_id = case
    await client.post(photos_url(consultation_id), data=form(ti.jpeg()), headers=patient.headers)
    response = await client.get(f"/api/v1/consultations/{consultation_id}/triage", headers=patient.headers)
    assert response.status == 200
    view = await response.json()
    # Before any score the case already has its checklist band (irregular colour: 2 points, "soon").
    assert view["awaiting_score"] is True and view["urgency"] == "soon"
    assert "answers about the spot set your place" in view["explanation"]
    assert view["photos"] == {"pending": 1, "scored": 0, "failed": 0}
    assert "screening aid, not a diagnosis" in view["disclaimer"]
    assert "p_malignant" not in view


RAW_BOUNDARY = "triage-raw-boundary"
MALFORMED_BODIES = [
    (
        "control character in a part header",
        f'--{RAW_BOUNDARY}\r\nContent-Disposition: form-data; name="\x02\U0001e5fe"\r\n\r\nx\r\n--{RAW_BOUNDARY}--\r\n',
    ),
    ("no closing boundary", f'--{RAW_BOUNDARY}\r\nContent-Disposition: form-data; name="body_site"\r\n\r\nback'),
    ("not multipart at all", "just some text"),
]


@pytest.mark.parametrize("name, body", MALFORMED_BODIES, ids=[m[0] for m in MALFORMED_BODIES])
async def test_malformed_multipart_is_a_typed_400(client, db, case, name, body):
    patient, consultation_id = case
    response = await client.post(
        photos_url(consultation_id),
        data=body.encode(),
        headers={**patient.headers, "Content-Type": f"multipart/form-data; boundary={RAW_BOUNDARY}"},
    )
    assert response.status in (400, 422), await response.text()
    assert response.content_type == "application/problem+json"
    await nothing_stored(client, db)


async def test_no_photos_for_a_closed_consultation(client, db, case):
    patient, consultation_id = case
    response = await client.post(
        f"/api/v1/consultations/{consultation_id}/cancel", json={"reason": "went to a GP"}, headers=patient.headers
    )
    assert response.status == 200, await response.text()
    response = await client.post(photos_url(consultation_id), data=form(ti.jpeg()), headers=patient.headers)
    await expect_problem(response, 409, "wrong_state")
    await nothing_stored(client, db)


async def test_concurrent_uploads_never_exceed_the_photo_cap(client, db, case):
    patient, consultation_id = case

    async def upload(first_seed: int):
        photos = (ti.jpeg(300, 300, seed=first_seed + i) for i in range(4))
        return await client.post(photos_url(consultation_id), data=form(*photos), headers=patient.headers)

    responses = await asyncio.gather(upload(0), upload(100))
    assert sorted(r.status for r in responses) == [201, 409]
    assert await db.fetchval("SELECT count(*) FROM triage_photos") == 4
    assert await client.app[STORES].redis.xlen(_stream(client)) == 4
