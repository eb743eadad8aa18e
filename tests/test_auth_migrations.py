"""The auth schema applied twice, and by two runners at once: one schema, no error."""

from __future__ import annotations

import asyncio
import secrets

import asyncpg
import pytest

import auth
from store.migrations import apply_migrations
from tests.live_server import create_database, drop_database

SCHEMA_QUERY = """
    SELECT 'table ' || table_name || '.' || column_name || ' ' || data_type AS item
      FROM information_schema.columns WHERE table_schema = 'public'
    UNION ALL SELECT 'trigger ' || tgname FROM pg_trigger WHERE NOT tgisinternal
    UNION ALL SELECT 'index ' || indexname FROM pg_indexes WHERE schemaname = 'public'
    UNION ALL SELECT 'function ' || proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace
    ORDER BY 1"""


@pytest.fixture
async def new_empty_database(server_database_url):
    """Creates empty databases on demand (URLs), dropped after the test."""
    names = []

    async def create() -> str:
        names.append(f"skindoc_m_{secrets.token_hex(6)}")
        return await create_database(server_database_url, names[-1])

    yield create
    for name in names:
        await drop_database(server_database_url, name)


async def _migrate_alone(url: str) -> list:
    conn = await asyncpg.connect(url)
    try:
        return await apply_migrations(conn, auth.migrations())
    finally:
        await conn.close()


async def _schema(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        return [row["item"] for row in await conn.fetch(SCHEMA_QUERY)]
    finally:
        await conn.close()


async def test_applying_twice_changes_nothing(new_empty_database):
    url = await new_empty_database()
    first = await _migrate_alone(url)
    schema = await _schema(url)
    second = await _migrate_alone(url)
    assert [m.path.name for m in first] == [m.path.name for m in auth.migrations()]
    assert second == []
    assert await _schema(url) == schema
    assert "trigger audit_log_append_only" in schema and "table users.email text" in schema


async def test_two_concurrent_runners_apply_once(new_empty_database):
    url = await new_empty_database()
    conns = [await asyncpg.connect(url) for _ in range(2)]
    try:
        results = await asyncio.gather(*(apply_migrations(conn, auth.migrations()) for conn in conns))
        recorded = await conns[0].fetch("SELECT domain, version FROM schema_migrations WHERE domain = 'auth'")
    finally:
        for conn in conns:
            await conn.close()
    applied = sorted(len(r) for r in results)
    assert applied == [0, len(auth.migrations())]
    assert len(recorded) == len(auth.migrations())
    # The same schema as a database migrated once, alone.
    reference = await new_empty_database()
    await _migrate_alone(reference)
    assert await _schema(url) == await _schema(reference)
