"""Chaos: Redis restarted without persistence, and PostgreSQL restarted, while patients chat and upload.

Each test runs a real web node and a real triage worker against servers it owns and breaks
(tests.chaos_servers). It checks what users and operators would: no acknowledged message lost
or doubled, every accepted photo scored once within a bound after recovery, requests during
the outage refused with 503 (never 500), node and worker ready again without a restart, and
it prints the recovery times (`pytest tests/test_chaos_stores.py -s | grep RECOVERY`).
"""

from __future__ import annotations

import asyncio
import time

import aiohttp

from tests.chaos_clients import ChatSender, Uploader, assert_nothing_lost_or_doubled, wait_all_scored
from tests.chaos_support import (  # noqa: F401 (fixtures)
    WORKER_READY_S,
    System,
    owned_postgres,
    owned_redis,
    paired_case,
    report,
    system,
    triage_status,
    wait_until,
)
from tests.live_server import http_status

OUTAGE_S = 1.5


async def _chat_and_upload_through(system: System, break_store, restore_store, upload_during: int) -> dict[str, float]:  # noqa: F811
    """Chat both ways and upload photos, break a store mid-way, restore it; returns recovery times.

    `upload_during` is the status of an upload while the store is down: 503 when it needs that store."""
    node = system.start_node()
    worker = system.start_worker()
    await wait_until(worker.ready, WORKER_READY_S, "worker ready before the fault", interval=0.5)
    await wait_until(lambda: triage_status(node.url) == "ok", 10, "the node sees the worker's heartbeat")
    async with aiohttp.ClientSession() as session:
        patient, doctor, case_id = await paired_case(session, node.url, system.env)
        senders = [ChatSender([node.url], patient, case_id, "p"), ChatSender([node.url], doctor, case_id, "d")]
        uploader = Uploader(node.url, patient, case_id, seed=100)
        chatting = [asyncio.create_task(s.send_until_stopped()) for s in senders]
        try:
            await wait_until(lambda: all(len(s.acked) >= 10 for s in senders), 30, "chat flowing")
            assert await uploader.upload_one(session) == 201
            # Mid-upload: a burst of photos whose jobs are still in the stream when the store goes.
            uploads = [asyncio.create_task(uploader.upload_one(session)) for _ in range(3)]
            await asyncio.sleep(0.05)
            await asyncio.to_thread(break_store)
            statuses = await asyncio.gather(*uploads)
            during = await uploader.upload_one(session)
            assert during == upload_during
            assert all(s in (201, 503) for s in statuses), statuses
            await asyncio.sleep(OUTAGE_S)
            # Figures count from the moment the store is started again (its start command included).
            restored = time.monotonic()
            await asyncio.to_thread(restore_store)

            times = {"store_start_command": time.monotonic() - restored}
            await wait_until(lambda: http_status(f"{node.url}/readyz") == 200, 30, "node ready")
            times["node_ready"] = time.monotonic() - restored
            await wait_until(
                lambda: all(s.first_ack_after(restored) for s in senders), 30, "chat acknowledged again", interval=0.02
            )
            times["chat"] = max(s.first_ack_after(restored) for s in senders) - restored
            await wait_until(lambda: _accepted(uploader, session), 30, "uploads accepted again", interval=0.2)
            times["upload"] = time.monotonic() - restored
            await wait_until(worker.ready, 30, "worker ready again")
            times["worker_ready"] = time.monotonic() - restored
            await wait_until(lambda: triage_status(node.url) == "ok", 30, "the node reports scoring ok again")
            times["node_reports_scoring"] = time.monotonic() - restored
            await wait_all_scored(system.env["SKINDOC_DATABASE_URL"], uploader.accepted)
            times["photos_scored"] = time.monotonic() - restored
        finally:
            for sender in senders:
                await sender.stop()
            await asyncio.gather(*chatting, return_exceptions=True)
        history = await senders[0].history()
        assert_nothing_lost_or_doubled(history, *senders)
        times["refused_sends"] = sum(len(s.refused) for s in senders)
        for sender in senders:
            await sender.close()
    assert worker.process.poll() is None and node.process.poll() is None, "nothing was restarted"
    return times


async def _accepted(uploader: Uploader, session: aiohttp.ClientSession) -> bool:
    return await uploader.upload_one(session) == 201


async def test_redis_restart_without_persistence_mid_chat_and_upload(system, owned_redis):  # noqa: F811
    # An upload needs only PostgreSQL: accepted while Redis is down, its job rebuilt by the reconciler.
    times = await _chat_and_upload_through(system, owned_redis.stop, owned_redis.start, upload_during=201)
    times.pop("refused_sends")  # a send needs only PostgreSQL: Redis going rarely refuses one
    report("redis-restart", **times)


async def test_postgres_restart_mid_chat_and_upload(system, owned_postgres):  # noqa: F811
    times = await _chat_and_upload_through(system, owned_postgres.stop, owned_postgres.start, upload_during=503)
    # Sends during the outage were answered store_unavailable (and sent again), not left unanswered.
    assert times.pop("refused_sends") > 0
    report("postgres-restart", **times)
