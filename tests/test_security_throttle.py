"""Throttles that concurrency cannot get past: sign-in attempts reserved before the password check,
and registrations counted per address."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace

import pytest

from web.app import create_app

PASSWORD = "correct horse battery stapler"
LIMIT = 5


@pytest.fixture
async def throttled(aiohttp_client, settings):
    auth = replace(settings.auth, login_max_failures=LIMIT, registration_max_per_address=LIMIT)
    return await aiohttp_client(create_app(replace(settings, auth=auth)))


async def _guess(client, email: str) -> int:
    response = await client.post("/api/v1/auth/login", json={"email": email, "password": "wrong guess " * 2})
    await response.read()
    return response.status


async def test_twenty_parallel_guesses_at_one_account_check_at_most_the_limit(throttled, db):
    await throttled.post(
        "/api/v1/auth/register", json={"email": "target@example.com", "password": PASSWORD, "name": "Tar Get"}
    )
    statuses = Counter(await asyncio.gather(*(_guess(throttled, "target@example.com") for _ in range(20))))
    assert statuses == {401: LIMIT, 429: 20 - LIMIT}
    # Only the checked guesses are failures in the audit log.
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE action = 'auth.login_failed'") == LIMIT
    # The right password is refused too while the account is locked.
    right = await throttled.post("/api/v1/auth/login", json={"email": "target@example.com", "password": PASSWORD})
    assert right.status == 429 and int(right.headers["Retry-After"]) > 0


async def test_twenty_parallel_guesses_from_one_address_at_many_accounts(throttled):
    emails = [f"spray{n}@example.com" for n in range(20)]
    statuses = Counter(await asyncio.gather(*(_guess(throttled, email) for email in emails)))
    assert statuses == {401: LIMIT, 429: 20 - LIMIT}


async def test_a_successful_sign_in_gives_its_attempt_back(throttled):
    await throttled.post(
        "/api/v1/auth/register", json={"email": "often@example.com", "password": PASSWORD, "name": "Of Ten"}
    )
    for _ in range(3 * LIMIT):  # a clinic's shared address signing in all day
        response = await throttled.post("/api/v1/auth/login", json={"email": "often@example.com", "password": PASSWORD})
        assert response.status == 200


async def test_registrations_are_throttled_per_address(throttled, db):
    async def register(n: int) -> int:
        response = await throttled.post(
            "/api/v1/auth/register", json={"email": f"new{n}@example.com", "password": PASSWORD, "name": "New Comer"}
        )
        await response.read()
        return response.status

    statuses = Counter(await asyncio.gather(*(register(n) for n in range(2 * LIMIT))))
    assert statuses == {201: LIMIT, 429: LIMIT}
    assert await db.fetchval("SELECT count(*) FROM users") == LIMIT
