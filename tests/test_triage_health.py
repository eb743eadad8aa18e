"""Triage health: worker heartbeats, what a web node's readiness says about scoring, and a supervised worker
that is restarted after an error and rides out Redis losing its data (the reconciler re-queues the photos)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import replace

from tests import test_chat_support as cs
from tests import test_triage_support as ti
from tests.test_triage_worker import classifier, upload  # noqa: F401 (fixture)
from triage import heartbeat
from triage.runner import WorkerSupervisor
from web.app import SETTINGS, STORES, triage_hooks


def _status(compiled: bool, fault: str | None = None) -> heartbeat.WorkerStatus:
    return heartbeat.WorkerStatus(
        f"w-{uuid.uuid4().hex[:6]}", "v1", (1, 2), compiled=compiled, fault=fault, last_ok_at=time.time()
    )


async def test_heartbeats_say_ok_degraded_or_down(node):
    client, stream = node.app[STORES].redis, node.app[SETTINGS].triage.stream
    assert heartbeat.triage_health(await heartbeat.read_all(client, stream), 3) == {
        "status": "down",
        "workers": 0,
        "ready_workers": 0,
        "last_heartbeat_age_s": None,
    }

    compiling = _status(compiled=False)
    await heartbeat.publish(client, stream, compiling, 3)
    health = heartbeat.triage_health(await heartbeat.read_all(client, stream), 3)
    assert health["status"] == "degraded" and health["reasons"] == ["compiling"]

    await heartbeat.publish(client, stream, _status(compiled=True, fault="database"), 3)
    health = heartbeat.triage_health(await heartbeat.read_all(client, stream), 3)
    assert health["status"] == "degraded" and health["reasons"] == ["compiling", "database"]

    await heartbeat.publish(client, stream, _status(compiled=True), 3)
    health = heartbeat.triage_health(await heartbeat.read_all(client, stream), 3)
    assert health["status"] == "ok" and health["workers"] == 3 and health["ready_workers"] == 1

    # Every worker's last beat is old: scoring is down, and the age says since when.
    key = heartbeat.heartbeats_key(stream)
    for consumer, raw in (await client.hgetall(key)).items():
        await client.hset(key, consumer, json.dumps({**json.loads(raw), "at": time.time() - 20}))
    health = heartbeat.triage_health(await heartbeat.read_all(client, stream), 3)
    assert health["status"] == "down" and health["last_heartbeat_age_s"] >= 20

    await heartbeat.withdraw(client, stream, compiling.consumer)
    assert len(await heartbeat.read_all(client, stream)) == 2


async def test_readiness_reports_scoring_from_the_heartbeats(node):
    response = await node.client.get("/readyz")
    body = await response.json()
    assert response.status == 200 and body["status"] == "degraded" and "scoring" not in body["ready_for"]
    await heartbeat.publish(node.app[STORES].redis, node.app[SETTINGS].triage.stream, _status(compiled=True), 15)
    body = await (await node.client.get("/readyz")).json()
    assert body["status"] == "ready" and body["ready_for"] == ["api", "chat", "scoring"]
    assert body["checks"]["triage"]["status"] == "ok" and body["checks"]["triage"]["last_heartbeat_age_s"] < 5


class FailsFirstWarmup:
    """The shipped classifier, except that its first warm-up fails (a device error, say)."""

    def __init__(self, inner) -> None:
        self._inner = inner
        self.failures = 0

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def warmup(self):
        if self.failures == 0:
            self.failures += 1
            raise RuntimeError("the accelerator went away")
        return self._inner.warmup()


async def _scored(node, photo_id: str) -> bool:
    async with node.app[STORES].pool.acquire() as conn:
        return await conn.fetchval("SELECT status FROM triage_photos WHERE id = $1", uuid.UUID(photo_id)) == "scored"


async def _wait(check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)


async def test_supervised_worker_restarts_after_an_error_and_survives_redis_losing_its_data(node, classifier):  # noqa: F811
    settings = node.app[SETTINGS]
    config = replace(settings.triage, reconcile_s=1, reconcile_grace_s=0, heartbeat_s=1, retry_max_s=1, saliency=False)
    stores = node.app[STORES]
    supervisor = WorkerSupervisor(
        stores.pool, stores.redis, config, triage_hooks(settings, None), FailsFirstWarmup(classifier)
    )
    running = asyncio.create_task(supervisor.run())
    try:

        async def ready() -> bool:
            return supervisor.status is not None and supervisor.status.ready(config.heartbeat_stale_s)

        await _wait(ready, 30)
        assert supervisor.restarts == 1
        patient = await cs.make_user(node, "patient")
        case = uuid.UUID((await cs.open_case(node, patient))["id"])
        [first] = await upload(node, patient, case, ti.jpeg(seed=1))
        await _wait(lambda: _scored(node, first["id"]), 20)

        # Redis loses everything (a restart without persistence): stream, group and the job just queued.
        await stores.redis.flushdb()
        [second] = await upload(node, patient, case, ti.jpeg(seed=2))
        await stores.redis.flushdb()
        await _wait(lambda: _scored(node, second["id"]), 20)
        assert supervisor.restarts == 1, "the worker rode that out itself"
        async with stores.pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM triage_photo_scores") == 2
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
