"""The running system: `skindoc serve` with its in-process triage worker, a doctor's console on Socket.IO and a
patient uploading over HTTP. The score lands and the console's queue changes without anyone polling."""

from __future__ import annotations

import asyncio
import secrets
import time

import aiohttp
import socketio

from tests.chaos_support import approve_doctor, open_case, register, sign_in
from tests.live_server import start_server
from tests.test_chat_support import Events
from tests.test_triage_support import jpeg

SCORE_TIMEOUT_S = 60.0  # the worker compiles its batch sizes after the server is ready


async def test_upload_in_the_running_system_reorders_the_live_queue(settings, tmp_path):
    env = {
        "SKINDOC_DATABASE_URL": settings.database_url,
        "SKINDOC_REDIS_URL": settings.redis_url,
        "SKINDOC_DATA_DIR": str(settings.data_dir),
        "SKINDOC_INPROCESS_WORKER": "true",
        "SKINDOC_SOCKETIO_CHANNEL": f"test-triage-live-{secrets.token_hex(4)}",
        "SKINDOC_TRIAGE_STREAM": f"test:triage:{secrets.token_hex(4)}",
        "SKINDOC_ARGON2_TIME_COST": "1",
        "SKINDOC_ARGON2_MEMORY_KIB": "1024",
    }
    server = start_server(env, tmp_path / "server.log")
    console = socketio.AsyncClient(reconnection=False)
    try:
        async with aiohttp.ClientSession() as session:
            doctor_email = await register(session, server.url, "doctor")
            await asyncio.to_thread(approve_doctor, env, doctor_email)
            doctor_token = (await sign_in(session, server.url, doctor_email))["Authorization"].removeprefix("Bearer ")

            events = Events()
            console.on("*", events.record)
            await console.connect(server.url, auth={"token": doctor_token}, transports=["websocket"])
            assert (await console.call("queue:subscribe", {}, timeout=10))["ok"]

            patient, case_id = await open_case(session, server.url)
            await events.wait_for(
                "queue:snapshot",
                lambda s: any(e["consultation_id"] == case_id and e["awaiting_score"] for e in s["queue"]),
            )
            form = aiohttp.FormData(default_to_multipart=True)
            form.add_field("body_site", "arm")
            form.add_field("photo", jpeg(seed=3), filename="spot.jpg", content_type="image/jpeg")
            uploaded = time.monotonic()
            async with session.post(
                f"{server.url}/api/v1/consultations/{case_id}/photos", data=form, headers=patient
            ) as r:
                assert r.status == 201, await r.text()

            snapshot = await events.wait_for(
                "queue:snapshot",
                lambda s: any(e["consultation_id"] == case_id and not e["awaiting_score"] for e in s["queue"]),
                timeout=SCORE_TIMEOUT_S,
            )
            print(f"upload to console update: {time.monotonic() - uploaded:.2f} s (includes the worker's warm-up)")
            [entry] = [e for e in snapshot["queue"] if e["consultation_id"] == case_id]
            assert entry["urgency"] in ("urgent", "soon", "routine") and 0 <= entry["p_malignant"] <= 1

            async with session.get(f"{server.url}/api/v1/consultations/{case_id}/triage", headers=patient) as r:
                view = await r.json()
            assert view["urgency"] == entry["urgency"] and "not a diagnosis" in view["disclaimer"]
    finally:
        if console.connected:
            await console.disconnect()
        server.stop()
