"""Socket.IO plumbing: compression setting, presence with a grace period and many devices, the worker's notifier."""

from __future__ import annotations

import asyncio
import uuid

import aiohttp
import pytest

from chat.realtime import QueueNotifier
from tests.test_chat_support import (
    call,
    chat_settings,
    connect,
    make_user,
    open_case,
    start_node,
)
from tests.test_triage_support import score_consultation
from web.app import STORES


async def score(node, consultation_id: str, **kwargs) -> None:
    async with node.app[STORES].pool.acquire() as conn:
        await score_consultation(conn, uuid.UUID(consultation_id), **kwargs)


async def _negotiated_extensions(node, user) -> str:
    url = f"{node.url}/socket.io/?EIO=4&transport=websocket"
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, compress=15) as ws:
            return ws._response.headers.get("Sec-WebSocket-Extensions", "")


@pytest.mark.parametrize("compression", [False, True])
async def test_websocket_compression_follows_the_setting(settings, aiohttp_client, compression):
    node = await start_node(aiohttp_client, chat_settings(settings, websocket_compression=compression))
    patient = await make_user(node, "patient")
    extensions = await _negotiated_extensions(node, patient)
    assert ("permessage-deflate" in extensions) is compression


async def test_presence_grace_period_and_many_devices(settings, aiohttp_client):
    node = await start_node(aiohttp_client, chat_settings(settings, presence_grace_s=1))
    doctor = await make_user(node, "doctor")
    watcher = await make_user(node, "doctor")
    console, console_events = await connect(node, watcher)
    phone, _ = await connect(node, doctor)
    laptop, _ = await connect(node, doctor)
    try:
        await call(console, "queue:subscribe")
        assert (await call(phone, "presence:set", {"availability": "available"}))["doctor"]["online"]
        await phone.disconnect()
        await asyncio.sleep(1.6)
        status = await (await node.client.get("/api/v1/doctors/me", headers=doctor.headers)).json()
        assert status == {**status, "online": True, "availability": "available"}  # the laptop keeps it online

        await laptop.disconnect()
        status = await (await node.client.get("/api/v1/doctors/me", headers=doctor.headers)).json()
        assert status["online"] is True  # within the grace period
        offline = await console_events.wait_for(
            "presence", lambda p: p["doctor_id"] == str(doctor.id) and p["online"] is False, timeout=3
        )
        assert offline["availability"] == "available"  # availability is kept; only the connection state changed
        # An offline doctor gets no new cases.
        await open_case(node, await make_user(node, "patient"))
        await asyncio.sleep(0.3)
        queue = await (await node.client.get("/api/v1/queue", headers=watcher.headers)).json()
        assert len(queue["queue"]) == 1
    finally:
        await console.disconnect()


async def test_worker_score_reorders_the_queue_through_a_write_only_notifier(settings, aiohttp_client, db):
    config = chat_settings(settings)
    node = await start_node(aiohttp_client, config)
    doctor = await make_user(node, "doctor")
    first = await open_case(node, await make_user(node, "patient"))
    second = await open_case(node, await make_user(node, "patient"))
    console, events = await connect(node, doctor)
    notifier = QueueNotifier.write_only(config.redis_url, config.chat.socketio_channel)
    try:
        queue = (await call(console, "queue:subscribe"))["queue"]
        assert [e["consultation_id"] for e in queue] == [first["id"], second["id"]]
        # As the triage worker does, in its own process.
        await score(node, second["id"], band="urgent", trusted=True, p_malignant=0.83)
        await notifier.queue_changed("scored", second["id"])
        pushed = await events.wait_for(
            "queue:snapshot", lambda s: s["queue"] and s["queue"][0]["consultation_id"] == second["id"], timeout=1.5
        )
        assert pushed["queue"][0]["urgency"] == "urgent" and pushed["queue"][0]["awaiting_score"] is False
    finally:
        await notifier.close()
        await console.disconnect()


async def test_ageing_lifts_an_old_routine_case_above_a_new_urgent_one(settings, aiohttp_client, db):
    node = await start_node(aiohttp_client, chat_settings(settings, queue_ageing_minutes=30))
    doctor = await make_user(node, "doctor")
    old = await open_case(node, await make_user(node, "patient"))
    fresh = await open_case(node, await make_user(node, "patient"))
    await score(node, old["id"], band="routine", trusted=True, p_malignant=0.05)
    await score(node, fresh["id"], band="urgent", trusted=True, p_malignant=0.9)

    async def order():
        body = await (await node.client.get("/api/v1/queue", headers=doctor.headers)).json()
        return [(e["consultation_id"], e["effective_band"]) for e in body["queue"]]

    assert await order() == [(fresh["id"], "urgent"), (old["id"], "routine")]
    # Waited 61 minutes: two ageing steps, routine → urgent; then ties on band, score decides.
    await db.execute("UPDATE consultations SET queued_at = now() - interval '61 minutes' WHERE id = $1", old["id"])
    assert await order() == [(fresh["id"], "urgent"), (old["id"], "urgent")]
    # Waited 91 minutes: rank -1, ahead of every newer case whatever its band.
    await db.execute("UPDATE consultations SET queued_at = now() - interval '91 minutes' WHERE id = $1", old["id"])
    assert await order() == [(old["id"], "urgent"), (fresh["id"], "urgent")]
