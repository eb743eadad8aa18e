"""Helpers for the security tests: a `skindoc serve` process with chosen settings, and accounts made over HTTP.

No tests here; the test_security_* modules import these.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping

import aiohttp

from tests.live_server import LiveServer, production_env, start_server

PASSWORD = "correct horse battery stapler"


def serve(
    settings, runtime_database_url: str, tmp_path, name: str = "server", extra: Mapping[str, str] | None = None
) -> LiveServer:
    """`skindoc serve` as production runs it: the test's superuser as owner, a runtime role to serve with."""
    env = {
        **production_env(settings, runtime_database_url),
        # The cheapest argon2id, so a test's accounts cost little on a small machine.
        "SKINDOC_ARGON2_TIME_COST": "1",
        "SKINDOC_ARGON2_MEMORY_KIB": "1024",
        "SKINDOC_ARGON2_PARALLELISM": "1",
        **(extra or {}),
    }
    return start_server(env, tmp_path / f"{name}.log")


async def register(
    http: aiohttp.ClientSession, email: str | None = None, *, role: str = "patient", name: str = "Sam Doe"
) -> dict:
    email = email or f"{role}-{secrets.token_hex(4)}@example.org"
    async with http.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": name, "role": role}
    ) as response:
        assert response.status == 201, await response.text()
        return {"email": email, **(await response.json())["user"]}


async def login(http: aiohttp.ClientSession, email: str, password: str = PASSWORD) -> dict:
    async with http.post("/api/v1/auth/login", json={"email": email, "password": password}) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def signed_in(http: aiohttp.ClientSession, role: str = "patient") -> dict:
    user = await register(http, role=role)
    return await login(http, user["email"])


def bearer(tokens: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}
