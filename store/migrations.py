"""Schema migrations: numbered plain-SQL files per domain, applied in order under an advisory lock.

Each domain owns a folder of files named `NNNN_description.sql`. A file is applied
once, in a transaction, and recorded in `schema_migrations` (domain, version).
Files that have landed are never edited; a change is a new file. The advisory
lock makes concurrent starters (two web nodes, a worker) wait for each other
instead of racing on the same DDL.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

# An arbitrary constant shared by every SkinDoc process: "SKDC" in ASCII.
MIGRATION_LOCK_ID = 0x534B4443

_FILE_PATTERN = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    domain: str
    version: int
    path: Path


def discover(domain: str, folder: Path) -> list[Migration]:
    found = []
    for path in sorted(folder.glob("*.sql")):
        match = _FILE_PATTERN.match(path.name)
        if not match:
            raise ValueError(f"migration file name not NNNN_name.sql: {path}")
        found.append(Migration(domain, int(match.group(1)), path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"duplicate migration numbers in {folder}")
    return found


async def apply_migrations(conn: asyncpg.Connection, migrations: list[Migration]) -> list[Migration]:
    """Apply the migrations not yet recorded; returns those applied now."""
    applied_now = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
    try:
        # Checked first: a runtime role may read the table but may not create anything.
        if await conn.fetchval("SELECT to_regclass('schema_migrations')") is None:
            await conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       domain text NOT NULL,
                       version integer NOT NULL,
                       name text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now(),
                       PRIMARY KEY (domain, version))"""
            )
        done = {(r["domain"], r["version"]) for r in await conn.fetch("SELECT domain, version FROM schema_migrations")}
        for migration in migrations:
            if (migration.domain, migration.version) in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.path.read_text())
                await conn.execute(
                    "INSERT INTO schema_migrations (domain, version, name) VALUES ($1, $2, $3)",
                    migration.domain,
                    migration.version,
                    migration.path.name,
                )
            log.info("migration applied", extra={"domain": migration.domain, "file": migration.path.name})
            applied_now.append(migration)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
    return applied_now


async def grant_runtime_privileges(conn: asyncpg.Connection, role: str, *, append_only: tuple[str, ...]) -> None:
    """Run by the owner after migrating: the role the servers run as may read and write rows, no more.

    No DDL, no ownership, no TRUNCATE anywhere; on the append-only tables only SELECT and
    INSERT, so no statement of the runtime role can change or remove a row of them (nor
    disable their triggers: that needs ownership). Granted afresh at every start, so tables
    added by later migrations are covered.
    """
    quoted = _quote_ident(role)
    async with conn.transaction():
        # Two nodes granting at once could collide on the same catalog rows ("tuple concurrently updated").
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_ID)
        await conn.execute(f"GRANT USAGE ON SCHEMA public TO {quoted}")
        await conn.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {quoted}")
        await conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {quoted}")
        read_only_history = ", ".join(_quote_ident(t) for t in (*append_only, "schema_migrations"))
        await conn.execute(f"REVOKE UPDATE, DELETE ON {read_only_history} FROM {quoted}")
        await conn.execute("REVOKE INSERT ON schema_migrations FROM " + quoted)
        await conn.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {quoted}")
        await conn.execute(f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {quoted}")


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def migrate_as_owner(
    owner_url: str, runtime_url: str, migrations: list[Migration], *, append_only: tuple[str, ...]
) -> None:
    """Applies the migrations as the owner role, then grants the runtime role (runtime_url's) its privileges."""
    runtime = await asyncpg.connect(runtime_url)
    try:
        runtime_role = await runtime.fetchval("SELECT current_user")
    finally:
        await runtime.close()
    owner = await asyncpg.connect(owner_url)
    try:
        await apply_migrations(owner, migrations)
        if runtime_role != await owner.fetchval("SELECT current_user"):
            await grant_runtime_privileges(owner, runtime_role, append_only=append_only)
    finally:
        await owner.close()
