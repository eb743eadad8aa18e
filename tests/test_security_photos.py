"""Photo intake against hostile files, and who sees a waiting case's full-size photo.

Peak memory for the worst allowed upload is measured by bench/intake_memory.py (README, "Security").
"""

from __future__ import annotations

import io
import uuid
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from tests import test_chat_support as cs
from tests import test_triage_support as ti
from tests.test_triage_routes import expect_problem, form, nothing_stored, photos_url
from tests.test_triage_worker import classifier, make_worker, node  # noqa: F401  (fixtures)
from triage import jobs, photo_gate
from triage.images import MAX_SIDE, normalise_photo
from triage.store import photos as photo_store
from web.app import SETTINGS, STORES, create_app

SMALL_CAP = 1_000_000


@pytest.fixture
async def client(aiohttp_client, settings):
    """The app with a small pixel cap, so files at the cap stay quick to make and to check."""
    triage = replace(settings.triage, max_pixels=SMALL_CAP)
    return await aiohttp_client(create_app(cs.chat_settings(replace(settings, triage=triage))))


@pytest.fixture
async def case(client):
    patient = await ti.account(client, "patient")
    return patient, await ti.consultation(client.app[STORES].pool, patient)


def png(image: Image.Image) -> bytes:
    return ti.encode(image, "PNG")


async def test_a_side_longer_than_jpeg_allows_is_a_typed_422(aiohttp_client, settings, db):
    """The attack run's file: 70000x128, 9 kB, under the pixel cap, but no JPEG can hold it."""
    app_client = await aiohttp_client(create_app(cs.chat_settings(settings)))
    patient = await ti.account(app_client, "patient")
    consultation_id = await ti.consultation(app_client.app[STORES].pool, patient)
    wide = png(Image.new("L", (70_000, 128), 180))
    assert len(wide) < 20_000
    response = await app_client.post(photos_url(consultation_id), data=form(wide), headers=patient.headers)
    body = await expect_problem(response, 422, "image_side_too_long")
    assert body["max_side"] == MAX_SIDE
    await nothing_stored(app_client, db)


async def test_a_16_bit_grey_photo_at_the_cap_is_scaled_not_clipped(client, case):
    patient, consultation_id = case
    side = int(SMALL_CAP**0.5)
    levels = np.full((side, side), 32768, dtype=np.uint16)
    levels[: side // 2] = 65535
    photo = png(Image.fromarray(levels))
    assert Image.open(io.BytesIO(photo)).mode.startswith("I")
    response = await client.post(photos_url(consultation_id), data=form(photo), headers=patient.headers)
    assert response.status == 201, await response.text()
    [stored] = (await response.json())["photos"]
    image = await client.get(stored["image_url"], headers=patient.headers)
    grey = np.asarray(Image.open(io.BytesIO(await image.read())).convert("L"))
    assert abs(int(grey[-10, 10]) - 128) <= 3 and grey[10, 10] >= 250


async def test_the_pixel_cap_counts_bytes_per_pixel(client, case, db):
    patient, consultation_id = case
    side = int(SMALL_CAP**0.5)
    rgba = png(Image.new("RGBA", (side, side), (200, 150, 120, 255)))
    response = await client.post(photos_url(consultation_id), data=form(rgba), headers=patient.headers)
    await expect_problem(response, 422, "image_too_many_pixels")
    await nothing_stored(client, db)
    rgb = png(Image.new("RGB", (side, side), (200, 150, 120)))
    response = await client.post(photos_url(consultation_id), data=form(rgb), headers=patient.headers)
    assert response.status == 201, await response.text()


async def test_a_phones_multi_picture_jpeg_is_accepted_as_its_first_frame(client, case):
    patient, consultation_id = case
    primary, preview = ti.lesion(900, 700, seed=1), ti.lesion(320, 240, seed=2)
    mpo = ti.encode(primary, "MPO", save_all=True, append_images=[preview], quality=90)
    assert Image.open(io.BytesIO(mpo)).format == "MPO"
    response = await client.post(photos_url(consultation_id), data=form(mpo), headers=patient.headers)
    assert response.status == 201, await response.text()
    [stored] = (await response.json())["photos"]
    assert (stored["width"], stored["height"]) == (900, 700)


async def test_only_the_assigned_doctor_gets_a_waiting_cases_full_size_photo(client, case):
    patient, consultation_id = case
    response = await client.post(photos_url(consultation_id), data=form(ti.jpeg()), headers=patient.headers)
    [photo] = (await response.json())["photos"]
    queue_doctor = await ti.account(client, "doctor")
    assert (await client.get(photo["thumbnail_url"], headers=queue_doctor.headers)).status == 200
    refused = await client.get(photo["image_url"], headers=queue_doctor.headers)
    await expect_problem(refused, 403, "forbidden")
    await ti.assign(client.app[STORES].pool, consultation_id, queue_doctor.user_id)
    assert (await client.get(photo["image_url"], headers=queue_doctor.headers)).status == 200


async def test_a_scoring_failure_names_no_python_object(node, classifier):  # noqa: F811
    patient = await cs.make_user(node, "patient")
    case = uuid.UUID((await cs.open_case(node, patient))["id"])
    good = normalise_photo(ti.jpeg(), max_pixels=10**8, min_side=128)
    broken = replace(good, image=b"\x89PNG\r\n\x1a\n" + b"\0" * 64, sha256="1" * 64)
    async with node.app[STORES].pool.acquire() as conn:
        quality = photo_gate.check_quality(Image.open(io.BytesIO(good.image)))
        [stored] = await photo_store.add_photos_txn(conn, case, "back", None, "unknown", [(broken, quality)], 6)
    await jobs.enqueue_photo_jobs(
        node.app[STORES].redis, node.app[SETTINGS].triage.stream, [(stored.photo["id"], case)]
    )
    worker = make_worker(node, classifier, "worker-repr")
    await worker.start()
    assert await worker.run_once(block_ms=1000) == 1
    doctor = await cs.make_user(node, "doctor")
    response = await node.client.get(f"/api/v1/consultations/{case}/photos", headers=doctor.headers)
    [photo] = (await response.json())["photos"]
    assert photo["status"] == "failed"
    assert "object at" not in photo["failure_reason"] and "0x" not in photo["failure_reason"]
    assert photo["failure_reason"] == "stored image unreadable (UnidentifiedImageError)"
