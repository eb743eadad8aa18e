"""Chaos: `kill -9` of a triage worker in the middle of a batch, and of a web node in the middle of a chat burst.

Real processes on servers the test owns. A killed worker's jobs are taken over by the next
worker and every photo is scored exactly once; a patient whose node died reconnects to the
other node, sends again what was not acknowledged, and the history has every acknowledged
message once. Recovery times are printed (`-s | grep RECOVERY`).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import asyncpg
import yaml

from tests.chaos_clients import ChatSender, Uploader, assert_nothing_lost_or_doubled, wait_all_scored
from tests.chaos_support import (  # noqa: F401 (fixtures)
    WORKER_READY_S,
    open_case,
    owned_postgres,
    owned_redis,
    paired_case,
    report,
    system,
    wait_until,
)
from tests.live_server import http_status

COMPOSE_FILE = Path(__file__).parent.parent / "docker-compose.yml"


def compose_healthcheck(service: str, port: int) -> int:
    """Runs docker-compose.yml's health check command of the service against a local port; its exit status."""
    compose = yaml.safe_load(COMPOSE_FILE.read_text())["services"][service]
    kind, *command = compose["healthcheck"]["test"]
    assert kind == "CMD" and command[0] == "python"
    configured = compose["environment"]["SKINDOC_WORKER_HEALTH_PORT"]
    script = command[-1].replace(f"127.0.0.1:{configured}/", f"127.0.0.1:{port}/")
    assert script != command[-1], "the health check calls the port the worker is configured to serve it on"
    return subprocess.run([sys.executable, *command[1:-1], script], capture_output=True, timeout=10).returncode


async def _kill_when_mid_batch(database_url: str, worker, uploader: Uploader, session) -> bool:
    """Uploads a batch and kills the worker once it has claimed a photo it has not written yet."""
    conn = await asyncpg.connect(database_url)
    try:
        assert await uploader.upload_one(session, photos=4) == 201
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            claimed = await conn.fetchval(
                "SELECT count(*) FROM triage_photos WHERE status = 'pending' AND attempts > 0"
            )
            if claimed:
                worker.kill()
                return True
            if await conn.fetchval("SELECT count(*) FROM triage_photos WHERE status = 'pending'") == 0:
                return False  # the whole batch went through between two looks
            await asyncio.sleep(0.005)
        return False
    finally:
        await conn.close()


async def test_worker_killed_mid_batch_jobs_are_taken_over_and_scored_once(system):  # noqa: F811
    node = system.start_node()
    worker = system.start_worker()
    await wait_until(worker.ready, WORKER_READY_S, "worker ready", interval=0.5)
    database_url = system.env["SKINDOC_DATABASE_URL"]
    async with aiohttp.ClientSession() as session:
        patient, case_id = await open_case(session, node.url)
        uploader = Uploader(node.url, patient, case_id, seed=200)
        for _ in range(5):
            if await _kill_when_mid_batch(database_url, worker, uploader, session):
                break
        else:
            raise AssertionError("never caught the worker in the middle of a batch")
        killed = time.monotonic()
        assert worker.process.returncode == -9
        # Photos keep coming while no worker runs; the node stays ready for everything but scoring.
        assert await uploader.upload_one(session, photos=2) == 201
        replacement = system.start_worker()
        assert compose_healthcheck("worker", replacement.port) != 0, "not healthy while it compiles"
        await wait_until(replacement.ready, WORKER_READY_S, "replacement worker ready", interval=0.2)
        worker_ready = time.monotonic() - killed
        assert compose_healthcheck("worker", replacement.port) == 0
        await wait_all_scored(database_url, uploader.accepted)
        scored = time.monotonic() - killed
    assert http_status(f"{node.url}/readyz") == 200
    report("worker-kill-9", replacement_ready=worker_ready, photos_scored=scored)


async def test_node_killed_mid_burst_clients_resume_on_the_other_node(system):  # noqa: F811
    node_a, node_b = system.start_node(), system.start_node()
    async with aiohttp.ClientSession() as session:
        patient, doctor, case_id = await paired_case(session, node_b.url, system.env)
        patient_sender = ChatSender([node_a.url, node_b.url], patient, case_id, "p")
        doctor_sender = ChatSender([node_b.url], doctor, case_id, "d")
        senders = [patient_sender, doctor_sender]
        chatting = [asyncio.create_task(s.send_until_stopped(pause_s=0.005)) for s in senders]
        try:
            await wait_until(lambda: len(patient_sender.acked) >= 20, 30, "burst under way", interval=0.01)
            acked_before = len(patient_sender.acked)
            node_a.process.kill()  # SIGKILL, in the middle of the patient's burst
            killed = time.monotonic()
            await wait_until(
                lambda: len(patient_sender.acked) > acked_before, 30, "patient acked on node B", interval=0.01
            )
            resumed = patient_sender.first_ack_after(killed) - killed
            await wait_until(lambda: len(patient_sender.acked) > acked_before + 20, 30, "burst goes on")
        finally:
            for sender in senders:
                await sender.stop()
            await asyncio.gather(*chatting, return_exceptions=True)
        assert patient_sender.reconnects >= 1
        assert_nothing_lost_or_doubled(await doctor_sender.history(), *senders)
        for sender in senders:
            await sender.close()
    assert http_status(f"{node_b.url}/readyz") == 200
    report("node-kill-9", chat_resumed_on_other_node=resumed)
