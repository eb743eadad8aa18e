"""The asyncpg connection pool, and PostgreSQL URLs derived from one another."""

from __future__ import annotations

import json
from urllib.parse import urlsplit, urlunsplit

import asyncpg


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb columns come back as Python objects, not strings.
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(database_url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    return await asyncpg.create_pool(database_url, min_size=min_size, max_size=max_size, init=_init_connection)


def with_user(url: str, user: str) -> str:
    """The same server and database, connecting as another role (no password: local trust or peer roles)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, f"{user}@{host}", parts.path, parts.query, parts.fragment))


def with_database(url: str, name: str) -> str:
    """The same server and role, pointed at another database."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))
