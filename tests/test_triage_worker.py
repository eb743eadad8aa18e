"""The triage worker on the real classifier, PostgreSQL, Redis and Socket.IO: upload → job → batch → score →
queue reordered → doctors' consoles told; a worker killed mid-batch; photos the model cannot score; rescoring."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import sys
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from chat import SOCKETIO_SERVER
from chat.realtime import QueueNotifier
from chat.store import consultations as chat_consultations
from chat.store.case_scores import SELECT_SCORED
from jax_models import checkpoint
from jax_models.serving import load_classifier
from tests import test_chat_support as cs
from tests import test_triage_support as ti
from tests.test_triage_routes import form, photos_url
from triage import jobs, photo_gate, scoring
from triage.config import TriageConfig
from triage.images import normalise_photo
from triage.rescore import rescore_consultations
from triage.store import photos as photo_store
from triage.store import scores as score_store
from triage.worker import TriageWorker
from web.app import SETTINGS, STORES, triage_hooks


@pytest.fixture(scope="session")
def classifier():
    """The shipped classifier (or SKINDOC_TRIAGE_MODEL_DIR's), every batch size compiled once."""
    config = TriageConfig.from_env()
    model = load_classifier(config.model_dir, batch_sizes=config.batch_sizes)
    model.warmup()
    return model


@pytest.fixture
async def node(aiohttp_client, settings):
    triage = replace(settings.triage, batch_wait_ms=200, claim_idle_ms=300)
    return await cs.start_node(aiohttp_client, replace(cs.chat_settings(settings), triage=triage))


def make_worker(node, classifier, consumer: str, **triage_overrides) -> TriageWorker:
    settings = node.app[SETTINGS]
    hooks = triage_hooks(settings, QueueNotifier(node.app[SOCKETIO_SERVER]))
    stores = node.app[STORES]
    return TriageWorker(
        stores.pool,
        stores.redis,
        classifier,
        replace(settings.triage, **triage_overrides),
        on_scored=hooks.on_scored,
        notifier=hooks.notifier,
        consumer=consumer,
    )


async def upload(node, patient, consultation_id, *photos: bytes, tag: str | None = None) -> list[dict]:
    response = await node.client.post(photos_url(consultation_id), data=form(*photos, tag=tag), headers=patient.headers)
    assert response.status == 201, await response.text()
    return (await response.json())["photos"]


async def stream_state(node) -> tuple[int, int]:
    """(entries in the stream, entries delivered but not acknowledged)."""
    cfg = node.app[SETTINGS].triage
    client = node.app[STORES].redis
    await jobs.ensure_group(client, cfg.stream, cfg.group)  # jobs queued before any worker started are kept
    return await client.xlen(cfg.stream), (await client.xpending(cfg.stream, cfg.group))["pending"]


async def score_audits(node) -> dict[str, int]:
    """How many times chat recorded a score for each consultation (once per scoring transaction)."""
    async with node.app[STORES].pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT subject_id, count(*) AS n FROM audit_log WHERE action = 'consultation.score' GROUP BY subject_id"
        )
    return {r["subject_id"]: r["n"] for r in rows}


async def test_upload_to_score_reorders_queue_and_tells_consoles(node, classifier):
    doctor = await cs.make_user(node, "doctor")
    console, events = await cs.connect(node, doctor)
    try:
        assert (await cs.call(console, "queue:subscribe"))["ok"]
        patients = [await cs.make_user(node, "patient") for _ in range(2)]
        cases = [uuid.UUID((await cs.open_case(node, p))["id"]) for p in patients]
        await upload(node, patients[0], cases[0], *(ti.jpeg(seed=s) for s in range(3)))
        await upload(node, patients[1], cases[1], ti.jpeg(seed=7), ti.jpeg_with_gps_and_orientation())
        assert await stream_state(node) == (5, 0)

        worker = make_worker(node, classifier, "worker-a")
        await worker.start()
        compiled = classifier.compile_count
        assert await worker.run_once(block_ms=1000) == 5
        assert dict(worker.batch_histogram) == {5: 5}, "five queued jobs go through one model call"
        assert classifier.compile_count == compiled, "no compilation after start-up"
        assert await stream_state(node) == (0, 0)

        snapshot = await events.wait_for(
            "queue:snapshot", lambda s: all(not e["awaiting_score"] for e in s["queue"]) and len(s["queue"]) == 2
        )
        queue = snapshot["queue"]
        async with node.app[STORES].pool.acquire() as conn:
            summaries = {c: await score_store.get_consultation_triage(conn, c) for c in cases}
        for entry in queue:
            summary = summaries[uuid.UUID(entry["consultation_id"])]
            assert entry["image_band"] == summary["urgency"]
            assert entry["p_malignant"] == pytest.approx(summary["p_malignant"])
            # Untagged photos are of no validated kind: the score is shown, not trusted, and the case keeps
            # its checklist band (score 1, routine) whatever the photo's band.
            assert entry["score_trusted"] is False and "kind_not_validated" in entry["gate"]["reasons"]
            assert entry["urgency"] == entry["checklist_band"] == "routine"
            assert any(
                line.startswith("photo score") and "not used" in line for line in entry["explanation"]["reasons"]
            )
    finally:
        await console.disconnect()

    # The consultation's score is its highest-risk photo's.
    async with node.app[STORES].pool.acquire() as conn:
        photo_scores = await conn.fetch(
            "SELECT p.consultation_id, s.p_malignant FROM triage_photo_scores s "
            "JOIN triage_photos p ON p.id = s.photo_id"
        )
    for case in cases:
        best = max(r["p_malignant"] for r in photo_scores if r["consultation_id"] == case)
        assert summaries[case]["p_malignant"] == pytest.approx(best)
        assert summaries[case]["model_version"] == classifier.version

    # The patient sees the band in plain words; the doctor sees the numbers.
    response = await node.client.get(f"/api/v1/consultations/{cases[0]}/triage", headers=patients[0].headers)
    view = await response.json()
    assert view["awaiting_score"] is False and view["urgency"] == "routine"
    assert view["guidance"] and "screening aid, not a diagnosis" in view["disclaimer"]
    assert "photo check was not used" in view["explanation"]
    assert "p_malignant" not in view and "probabilities" not in view
    response = await node.client.get(f"/api/v1/consultations/{cases[0]}/triage", headers=doctor.headers)
    view = await response.json()
    assert view["p_malignant"] == pytest.approx(summaries[cases[0]]["p_malignant"])
    assert set(view["probabilities"]) == set(classifier.class_names)
    assert view["model_version"] == classifier.version


async def test_worker_killed_after_reading_is_reclaimed_and_scored_once(node, classifier):
    patient = await cs.make_user(node, "patient")
    case = uuid.UUID((await cs.open_case(node, patient))["id"])
    await upload(node, patient, case, *(ti.jpeg(seed=s) for s in range(4)))

    # Worker A reads the batch, then dies before writing or acknowledging anything.
    dead = make_worker(node, classifier, "worker-dead")
    await dead.start()
    assert len(await dead.take_batch(block_ms=1000)) == 4
    assert await stream_state(node) == (4, 4)

    # A takeover window of 2 s, so that a slow start on a loaded machine cannot pass it before the check.
    survivor = make_worker(node, classifier, "worker-survivor", claim_idle_ms=2000)
    await survivor.start()
    assert await survivor.run_once(block_ms=50) == 0, "jobs of a live-looking consumer are not stolen"
    await asyncio.sleep(2.1)  # past claim_idle_ms
    assert await survivor.run_once(block_ms=50) == 4
    assert await stream_state(node) == (0, 0)
    async with node.app[STORES].pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM triage_photo_scores") == 4
    assert (await score_audits(node)) == {str(case): 1}


async def test_worker_killed_after_writing_before_ack_changes_nothing_on_retry(node, classifier):
    patient = await cs.make_user(node, "patient")
    case = uuid.UUID((await cs.open_case(node, patient))["id"])
    await upload(node, patient, case, ti.jpeg(seed=1), ti.jpeg(seed=2))

    # Worker A gets as far as committing the scores, then dies before XACK.
    dead = make_worker(node, classifier, "worker-dead")
    await dead.start()
    batch = await dead.take_batch(block_ms=1000)
    results = await dead.score(batch)
    await scoring.write_results(node.app[STORES].pool, classifier, results, dead.on_scored)
    async with node.app[STORES].pool.acquire() as conn:
        before = await conn.fetch("SELECT photo_id, p_malignant, scored_at FROM triage_photo_scores ORDER BY photo_id")
    assert len(before) == 2 and await stream_state(node) == (2, 2)

    survivor = make_worker(node, classifier, "worker-survivor")
    await survivor.start()
    await asyncio.sleep(0.4)
    assert await survivor.run_once(block_ms=50) == 2
    assert await stream_state(node) == (0, 0)
    async with node.app[STORES].pool.acquire() as conn:
        after = await conn.fetch("SELECT photo_id, p_malignant, scored_at FROM triage_photo_scores ORDER BY photo_id")
    assert after == before, "the reclaimed jobs wrote nothing new"
    assert (await score_audits(node)) == {str(case): 1}
    assert survivor.scored == 0


async def test_photo_the_model_cannot_read_is_failed_and_the_case_stays_queued(node, classifier):
    patient = await cs.make_user(node, "patient")
    case = uuid.UUID((await cs.open_case(node, patient))["id"])
    good = normalise_photo(ti.jpeg(), max_pixels=10**8, min_side=128)
    # A stored photo that no longer decodes (say, damaged storage): the worker must not lose the case.
    broken = replace(good, image=b"\xff\xd8\xff" + b"\0" * 64, sha256="0" * 64)
    cfg = node.app[SETTINGS].triage
    async with node.app[STORES].pool.acquire() as conn:
        quality = photo_gate.check_quality(Image.open(io.BytesIO(good.image)))
        [stored] = await photo_store.add_photos_txn(conn, case, "back", None, "unknown", [(broken, quality)], 6)
    await jobs.enqueue_photo_jobs(node.app[STORES].redis, cfg.stream, [(stored.photo["id"], case)])

    worker = make_worker(node, classifier, "worker-a")
    await worker.start()
    assert await worker.run_once(block_ms=1000) == 1
    assert await stream_state(node) == (0, 0)
    async with node.app[STORES].pool.acquire() as conn:
        photo = await conn.fetchrow(
            "SELECT status, failure_reason FROM triage_photos WHERE id = $1", stored.photo["id"]
        )
        consultation = await chat_consultations.get_consultation(conn, case)
    assert photo["status"] == "failed" and "unreadable" in photo["failure_reason"]
    assert consultation["state"] == "waiting" and consultation["scored_at"] is None
    response = await node.client.get(f"/api/v1/consultations/{case}/triage", headers=patient.headers)
    view = await response.json()
    assert view["awaiting_score"] is True and view["photos"]["failed"] == 1
    assert "could not check your photos automatically" in view["guidance"]


async def test_photo_that_keeps_killing_workers_is_given_up(node, classifier):
    patient = await cs.make_user(node, "patient")
    case = uuid.UUID((await cs.open_case(node, patient))["id"])
    [photo] = await upload(node, patient, case, ti.jpeg())
    cfg = node.app[SETTINGS].triage
    async with node.app[STORES].pool.acquire() as conn:
        # Each delivery counts an attempt: as if every earlier worker had died on this photo.
        await conn.execute("UPDATE triage_photos SET attempts = $1", cfg.max_attempts)
    worker = make_worker(node, classifier, "worker-a")
    await worker.start()
    assert await worker.run_once(block_ms=1000) == 1
    async with node.app[STORES].pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT status, failure_reason FROM triage_photos WHERE id = $1", uuid.UUID(photo["id"])
        )
    assert row["status"] == "failed" and "gave up" in row["failure_reason"]
    assert await stream_state(node) == (0, 0)


async def test_saliency_overlay_is_drawn_when_idle_and_shown_to_the_assigned_doctor_only(node, classifier):
    patient = await cs.make_user(node, "patient")
    assigned = await cs.make_user(node, "doctor")
    other = await cs.make_user(node, "doctor")
    case = uuid.UUID((await cs.open_case(node, patient))["id"])
    [photo] = await upload(node, patient, case, ti.jpeg())
    worker = make_worker(node, classifier, "worker-a")
    await worker.start()
    await worker.run_once(block_ms=1000)
    saliency_url = f"/api/v1/photos/{photo['id']}/saliency"
    await ti.assign(node.app[STORES].pool, case, assigned.id)
    assert (await node.client.get(saliency_url, headers=assigned.headers)).status == 404
    assert await worker.compute_missing_saliency(5) == 1
    assert await worker.compute_missing_saliency(5) == 0
    response = await node.client.get(saliency_url, headers=assigned.headers)
    assert response.status == 200 and response.content_type == "image/png"
    assert (await response.read()).startswith(b"\x89PNG")
    assert (await node.client.get(saliency_url, headers=patient.headers)).status == 403
    assert (await node.client.get(saliency_url, headers=other.headers)).status == 404
    listing = await (await node.client.get(photos_url(case), headers=assigned.headers)).json()
    assert listing["photos"][0]["saliency_url"] == saliency_url
    assert listing["photos"][0]["score"]["model_version"] == classifier.version


async def test_rescore_with_a_new_model_version_moves_open_cases(node, classifier, tmp_path):
    patients = [await cs.make_user(node, "patient") for _ in range(2)]
    cases = [uuid.UUID((await cs.open_case(node, p))["id"]) for p in patients]
    for index, (patient, case) in enumerate(zip(patients, cases, strict=True)):
        await upload(node, patient, case, ti.jpeg(seed=index), ti.jpeg(seed=10 + index))
    worker = make_worker(node, classifier, "worker-a")
    await worker.start()
    await worker.run_once(block_ms=1000)

    # A new model version: the shipped weights recalibrated with another temperature.
    model, metadata = checkpoint.load(TriageConfig.from_env().model_dir)
    new_metadata = checkpoint.save(tmp_path / "model", model, {**metadata, "temperature": metadata["temperature"] * 3})
    new_classifier = load_classifier(tmp_path / "model", batch_sizes=classifier.batch_sizes)
    assert new_classifier.version != classifier.version

    hooks = triage_hooks(node.app[SETTINGS], QueueNotifier(node.app[SOCKETIO_SERVER]))
    async with node.app[STORES].pool.acquire() as conn:
        open_ids = await hooks.open_consultations(conn)
    assert set(open_ids) == set(cases)
    changed = await rescore_consultations(
        node.app[STORES].pool, new_classifier, open_ids, on_scored=hooks.on_scored, notifier=hooks.notifier
    )
    assert {c.consultation_id for c in changed} == set(cases)
    async with node.app[STORES].pool.acquire() as conn:
        rows = await conn.fetch(SELECT_SCORED)
        versions = await conn.fetch("SELECT model_version, count(*) AS n FROM triage_photo_scores GROUP BY 1")
    assert {r["model_version"] for r in rows} == {new_metadata["version"]}
    assert {r["model_version"]: r["n"] for r in versions} == {classifier.version: 4, new_classifier.version: 4}
    # Running it again finds nothing left to do.
    assert (
        await rescore_consultations(
            node.app[STORES].pool, new_classifier, open_ids, on_scored=hooks.on_scored, notifier=None
        )
        == []
    )


async def test_skindoc_rescore_command_moves_the_live_queue(node, classifier, tmp_path):
    settings = node.app[SETTINGS]
    patient = await cs.make_user(node, "patient")
    doctor = await cs.make_user(node, "doctor")
    case = uuid.UUID((await cs.open_case(node, patient))["id"])
    await upload(node, patient, case, ti.jpeg(seed=5))
    worker = make_worker(node, classifier, "worker-a")
    await worker.start()
    await worker.run_once(block_ms=1000)
    model, metadata = checkpoint.load(TriageConfig.from_env().model_dir)
    new_version = checkpoint.save(tmp_path / "model", model, {**metadata, "temperature": metadata["temperature"] / 3})
    console, events = await cs.connect(node, doctor)
    try:
        assert (await cs.call(console, "queue:subscribe"))["ok"]
        command = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "web.cli",
            "rescore",
            "--model",
            str(tmp_path / "model"),
            env={
                **os.environ,
                "SKINDOC_DATABASE_URL": settings.database_url,
                "SKINDOC_REDIS_URL": settings.redis_url,
                "SKINDOC_SOCKETIO_CHANNEL": settings.chat.socketio_channel,
                "SKINDOC_DATA_DIR": str(tmp_path),
            },
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(command.communicate(), 120)
        assert command.returncode == 0, err.decode()[-2000:]
        assert f"model {new_version['version']}: 1 open consultations rescored" in out.decode()
        async with node.app[STORES].pool.acquire() as conn:
            rescored = (await chat_consultations.get_consultation(conn, case))["p_malignant"]
        await events.wait_for(
            "queue:snapshot",
            lambda s: any(
                e["consultation_id"] == str(case) and e["p_malignant"] == pytest.approx(rescored) for e in s["queue"]
            ),
        )
    finally:
        await console.disconnect()


async def test_photo_whose_job_was_lost_with_redis_is_requeued_at_start(node, classifier):
    patient = await cs.make_user(node, "patient")
    case = uuid.UUID((await cs.open_case(node, patient))["id"])
    [photo] = await upload(node, patient, case, ti.jpeg())
    cfg = node.app[SETTINGS].triage
    # Redis lost the stream (say, restarted without persistence) long after the upload was acknowledged.
    await node.app[STORES].redis.delete(cfg.stream)
    async with node.app[STORES].pool.acquire() as conn:
        await conn.execute("UPDATE triage_photos SET created_at = now() - interval '1 hour'")
    worker = make_worker(node, classifier, "worker-a")
    await worker.start()
    assert await worker.run_once(block_ms=1000) == 1
    async with node.app[STORES].pool.acquire() as conn:
        assert await conn.fetchval("SELECT status FROM triage_photos WHERE id = $1", uuid.UUID(photo["id"])) == "scored"


HAM10000 = Path(__file__).parent / "fixtures" / "ham10000"


def ham10000_image(dx: str, nth: int = 0) -> bytes:
    """A dermoscopy image of the given diagnosis from the shipped HAM10000 fixtures (171x128 JPEG)."""
    with open(HAM10000 / "labels.csv", newline="") as labels:
        ids = [row["image_id"] for row in csv.DictReader(labels) if row["dx"] == dx]
    return (HAM10000 / "images" / f"{ids[nth]}.jpg").read_bytes()


async def test_real_lesions_reorder_the_queue_most_severe_first(node, classifier):
    doctor = await cs.make_user(node, "doctor")
    console, events = await cs.connect(node, doctor)
    try:
        assert (await cs.call(console, "queue:subscribe"))["ok"]
        # Opened in this order, so before scoring the queue is first come, first served.
        photos = {
            "naevus": [ham10000_image("nv")],
            "keratosis": [ham10000_image("bkl")],
            "naevus and melanoma": [ham10000_image("nv", 1), ham10000_image("mel")],
        }
        cases = {}
        for name, images in photos.items():
            patient = await cs.make_user(node, "patient")
            cases[name] = (await cs.open_case(node, patient))["id"]
            # Dermoscopy, said so: the kind the model is validated for, so its scores can be trusted.
            uploaded = await upload(node, patient, uuid.UUID(cases[name]), *images, tag="dermoscopic")
            assert all("800x600" in photo["warnings"][0] for photo in uploaded)
        worker = make_worker(node, classifier, "worker-a")
        await worker.start()
        assert await worker.run_once(block_ms=1000) == 4

        snapshot = await events.wait_for(
            "queue:snapshot", lambda s: len(s["queue"]) == 3 and not any(e["awaiting_score"] for e in s["queue"])
        )
        order = {entry["consultation_id"]: entry for entry in snapshot["queue"]}
        ranked = [name for name, _ in sorted(cases.items(), key=lambda item: order[item[1]]["position"])]
        assert ranked == ["naevus and melanoma", "keratosis", "naevus"]
        assert [order[cases[name]]["urgency"] for name in ranked] == ["urgent", "soon", "routine"]
        assert all(
            entry["score_trusted"] and entry["gate"]["summary"] == "dermoscopic, in range" for entry in order.values()
        )
        # The consultation with two photos is as urgent as its melanoma, not its naevus.
        assert order[cases["naevus and melanoma"]]["p_malignant"] > 0.5
    finally:
        await console.disconnect()


async def test_running_worker_scores_then_draws_overlays_when_idle(node, classifier):
    patient = await cs.make_user(node, "patient")
    case = uuid.UUID((await cs.open_case(node, patient))["id"])
    worker = make_worker(node, classifier, "worker-a")
    running = asyncio.create_task(worker.run())
    try:
        await upload(node, patient, case, *(ti.jpeg(seed=s) for s in range(2)))
        await upload(node, patient, case, ti.jpeg(seed=9))

        async def done() -> bool:
            async with node.app[STORES].pool.acquire() as conn:
                return (
                    await conn.fetchval("SELECT count(*) = 3 AND bool_and(status = 'scored') FROM triage_photos")
                    and await conn.fetchval("SELECT count(*) FROM triage_saliency") == 3
                )

        for _ in range(300):
            if await done():
                break
            await asyncio.sleep(0.1)
        assert await done(), "every photo scored, then given its overlay"
        assert not running.done()
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    assert running.cancelled()
    assert await stream_state(node) == (0, 0)


async def test_a_new_model_version_catches_up_on_the_cases_it_touches(node, classifier, tmp_path):
    patient = await cs.make_user(node, "patient")
    case = uuid.UUID((await cs.open_case(node, patient))["id"])
    model, metadata = checkpoint.load(TriageConfig.from_env().model_dir)
    checkpoint.save(tmp_path / "old", model, {**metadata, "temperature": metadata["temperature"] * 2})
    old_classifier = load_classifier(tmp_path / "old", batch_sizes=classifier.batch_sizes)
    await upload(node, patient, case, ti.jpeg(seed=1), ti.jpeg(seed=2))
    old_worker = make_worker(node, old_classifier, "worker-old")
    await old_worker.start()
    assert await old_worker.run_once(block_ms=1000) == 2

    # The new model is deployed; the patient adds a photo. Its worker scores it, then the two older
    # photos, so that the consultation is summarised over all three under the new version.
    await upload(node, patient, case, ti.jpeg(seed=3))
    new_worker = make_worker(node, classifier, "worker-new")
    await new_worker.start()
    assert await new_worker.run_once(block_ms=1000) == 1
    assert await new_worker.run_once(block_ms=1000) == 2
    assert await new_worker.run_once(block_ms=100) == 0
    async with node.app[STORES].pool.acquire() as conn:
        summary = await score_store.get_consultation_triage(conn, case)
    assert summary["model_version"] == classifier.version and summary["scored_photos"] == 3
