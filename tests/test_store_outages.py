"""A store that is down: requests answer 503 `store_unavailable` with Retry-After (never 500), Socket.IO
connections are refused with the same code, and the log says so once, not once per request."""

from __future__ import annotations

import logging
from dataclasses import replace

import asyncpg
import pytest
import redis.exceptions
import socketio

from store.outages import DATABASE, REDIS, Backoff, outage_kind
from tests.live_server import free_port
from tests.test_chat_support import PASSWORD, make_user, start_node


def test_outage_kind_tells_store_outages_from_bugs():
    assert outage_kind(redis.exceptions.ConnectionError("refused")) == REDIS
    assert outage_kind(redis.exceptions.TimeoutError()) == REDIS
    assert outage_kind(ConnectionRefusedError(111, "refused")) == DATABASE
    assert outage_kind(asyncpg.ConnectionDoesNotExistError("closed")) == DATABASE
    assert outage_kind(asyncpg.CannotConnectNowError("starting up")) == DATABASE
    try:
        try:
            raise redis.exceptions.ConnectionError("refused")
        except redis.exceptions.ConnectionError as cause:
            raise RuntimeError("wrapped") from cause
    except RuntimeError as wrapped:
        assert outage_kind(wrapped) == REDIS
    assert outage_kind(ValueError("a bug")) is None
    assert outage_kind(redis.exceptions.ResponseError("WRONGTYPE")) is None
    assert outage_kind(asyncpg.UniqueViolationError("duplicate")) is None


def test_backoff_grows_jittered_up_to_its_cap():
    backoff = Backoff(0.1, 1.0)
    delays = [backoff.next_delay() for _ in range(10)]
    assert 0.05 <= delays[0] <= 0.1
    assert all(0.5 <= d <= 1.0 for d in delays[5:]), delays
    backoff.reset()
    assert backoff.next_delay() <= 0.1


@pytest.fixture
async def node_without_redis(aiohttp_client, settings):
    """A node whose Redis is unreachable (nothing listens on its port)."""
    patient_node = await start_node(aiohttp_client, settings)
    patient = await make_user(patient_node, "patient")
    doctor = await make_user(patient_node, "doctor")
    node = await start_node(aiohttp_client, replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    return node, patient, doctor


async def test_requests_needing_a_missing_store_answer_503_with_retry_after(node_without_redis, caplog):
    node, patient, _ = node_without_redis
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            response = await node.client.post(
                "/api/v1/auth/login", json={"email": "x@example.org", "password": PASSWORD}
            )
            assert response.status == 503
            assert response.content_type == "application/problem+json"
            assert response.headers["Retry-After"] == "2"
            body = await response.json()
            assert body["code"] == "store_unavailable" and body["store"] == "redis" and body["retry_after"] == 2
        # Verifying a token and reading consultations need only PostgreSQL: they go on during the outage.
        response = await node.client.get("/api/v1/consultations", headers=patient.headers)
        assert response.status == 200
    # The node may meet the outage while it starts (the fixture), so count the setup's lines too.
    records = caplog.get_records("setup") + caplog.records
    outage_lines = [r for r in records if r.name == "store.outages"]
    assert [r.getMessage() for r in outage_lines] == ["redis unavailable"], "one line for the whole outage"
    assert not [r for r in records if r.exc_info], "no traceback per request"


async def test_a_socket_connects_while_redis_is_down(node_without_redis):
    """Tokens are checked in PostgreSQL, so a Redis outage does not lock doctors or patients out of chat
    (during a PostgreSQL outage events are answered store_unavailable: tests/test_chaos_stores.py)."""
    node, _, doctor = node_without_redis
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(node.url, auth={"token": doctor.token}, transports=["websocket"], wait_timeout=5)
    try:
        assert client.connected
    finally:
        await client.disconnect()
