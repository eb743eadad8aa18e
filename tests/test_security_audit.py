"""The audit trail against the application's own database role and against the table's owner.

The server runs as a runtime role (SELECT and INSERT on the audit log, nothing more); the
owner migrates. The runtime role cannot disable the triggers, update, delete or rewrite; a
rewrite by the owner, hashes recomputed with the database's own digest, is found by
`skindoc audit verify` through the checkpoints signed with a key the database never sees.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import asyncpg
import pytest

from auth import audit
from store.migrations import migrate_as_owner
from tests.live_server import start_server
from tests.test_auth_admin import run_cli  # noqa: F401  (fixture)
from tests.test_security_support import register, serve
from web.app import all_migrations, append_only_tables


def rewrite_and_rechain(change: str) -> str:
    """As the owner: the trigger off, `change` made, and every digest recomputed the way the chain
    trigger computes it, so that the unkeyed chain is consistent again."""
    return f"""
ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only;
{change};
DO $$
DECLARE
    r record;
    prev bytea;
BEGIN
    FOR r IN SELECT id FROM audit_log ORDER BY id LOOP
        UPDATE audit_log SET prev_hash = prev WHERE id = r.id;
        UPDATE audit_log a SET hash = audit_log_digest(a) WHERE id = r.id RETURNING hash INTO prev;
    END LOOP;
END $$;
ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only;
"""


REWRITE_AND_RECHAIN = rewrite_and_rechain("""UPDATE audit_log SET details = '{"role": "admin"}' WHERE id = 2""")


@pytest.fixture
def checkpointing_server(settings, runtime_database_url, tmp_path):
    server = serve(settings, runtime_database_url, tmp_path, extra={"SKINDOC_AUDIT_CHECKPOINT_INTERVAL_S": "1"})
    yield server
    server.stop()


async def _wait_for_checkpoint(db, audit_id: int, timeout: float = 15) -> None:
    for _ in range(int(timeout * 10)):
        if await db.fetchval("SELECT max(audit_id) FROM audit_checkpoints") == audit_id:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("no server signed a checkpoint")


async def _registrations(server, count: int) -> None:
    async with aiohttp.ClientSession(server.url) as http:
        for _ in range(count):
            await register(http)


async def test_the_runtime_role_can_only_read_and_append(database_url, runtime_database_url, db):
    # What `skindoc serve` / `skindoc migrate` do at start with an owner URL (the live servers of the other
    # tests here do the same); then three rows written the application's way, as the runtime role.
    await migrate_as_owner(database_url, runtime_database_url, all_migrations(), append_only=append_only_tables())
    runtime = await asyncpg.connect(runtime_database_url)
    try:
        for n in range(3):
            async with runtime.transaction():
                await audit.AuditContext(None).record(
                    runtime, "auth.register", "user", f"u{n}", {"role": "patient", "status": "active"}
                )
        privileges = {
            p: await runtime.fetchval("SELECT has_table_privilege('audit_log', $1)", p)
            for p in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
        }
        assert privileges == {
            "SELECT": True,
            "INSERT": True,
            "UPDATE": False,
            "DELETE": False,
            "TRUNCATE": False,
            "REFERENCES": False,
            "TRIGGER": False,
        }
        attacks = [
            "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only",
            "ALTER TABLE audit_log DISABLE TRIGGER ALL",
            "UPDATE audit_log SET details = '{\"role\": \"admin\"}' WHERE id = 2",
            "UPDATE audit_log a SET hash = audit_log_digest(a) WHERE id = 2",
            "DELETE FROM audit_log WHERE id = 3",
            "TRUNCATE audit_log",
            "DROP TRIGGER audit_log_append_only ON audit_log",
            "CREATE OR REPLACE FUNCTION audit_log_digest(entry audit_log) RETURNS bytea LANGUAGE sql AS 'SELECT NULL'",
            "UPDATE audit_checkpoints SET mac = NULL",
            "DELETE FROM audit_checkpoints",
        ]
        for statement in attacks:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await runtime.execute(statement)
        # The rewrite with recomputed hashes, as this role: refused at its first statement.
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await runtime.execute(REWRITE_AND_RECHAIN)
    finally:
        await runtime.close()
    rows = await db.fetch("SELECT action, details FROM audit_log ORDER BY id")
    assert [r["action"] for r in rows] == ["auth.register"] * 3
    assert all(json.loads(r["details"]) == {"role": "patient", "status": "active"} for r in rows)


async def test_a_rewrite_with_recomputed_hashes_is_found(checkpointing_server, db, run_cli):  # noqa: F811
    await _registrations(checkpointing_server, 4)
    await _wait_for_checkpoint(db, 4)
    status, out, _ = await run_cli("audit", "verify")
    assert status == 0 and "intact: 4 rows checked, 1 signed checkpoints" in out, out
    # The checkpoint is also kept outside PostgreSQL, in the server's log.
    logged = [
        json.loads(line)
        for line in checkpointing_server.log_path.read_text().splitlines()
        if "audit checkpoint signed" in line
    ]
    assert logged and logged[-1]["audit_id"] == 4

    await db.execute(REWRITE_AND_RECHAIN)
    status, out, _ = await run_cli("audit", "verify")
    assert status == 1, out
    assert "broken at row 4" in out and "rewritten after it was signed" in out


async def test_a_forged_or_removed_checkpoint_is_found(checkpointing_server, runtime_database_url, db, run_cli):  # noqa: F811
    await _registrations(checkpointing_server, 2)
    await _wait_for_checkpoint(db, 2)
    checkpointing_server.stop()  # nobody signs from here on
    await _registrations_direct(db, 1)
    runtime = await asyncpg.connect(runtime_database_url)
    try:
        head = await runtime.fetchrow("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")
        await runtime.execute(
            "INSERT INTO audit_checkpoints (id, audit_id, audit_hash, mac) VALUES (2, $1, $2, $3)",
            head["id"],
            head["hash"],
            b"\x00" * 32,
        )
    finally:
        await runtime.close()
    status, out, _ = await run_cli("audit", "verify")
    assert status == 1 and "signed checkpoint 2 does not verify" in out, out

    # The owner removes every checkpoint and backdates the log: the rows are vouched for by nothing.
    await db.execute("ALTER TABLE audit_checkpoints DISABLE TRIGGER audit_checkpoints_append_only")
    await db.execute("DELETE FROM audit_checkpoints")
    await db.execute("ALTER TABLE audit_checkpoints ENABLE TRIGGER audit_checkpoints_append_only")
    await db.execute(rewrite_and_rechain("UPDATE audit_log SET occurred_at = occurred_at - interval '1 day'"))
    status, out, _ = await run_cli("audit", "verify")
    assert status == 1 and "not vouched for" in out, out


async def _registrations_direct(db, count: int) -> None:
    for n in range(count):
        await db.execute("INSERT INTO audit_log (action, subject_type) VALUES ('test.write', $1)", f"t{n}")


async def test_serve_refuses_to_run_as_the_owner_of_the_audit_log(settings, tmp_path):
    env = {
        "SKINDOC_DATABASE_URL": settings.database_url,
        "SKINDOC_REDIS_URL": settings.redis_url,
        "SKINDOC_DATA_DIR": str(settings.data_dir),
        "SKINDOC_DEV_MODE": "false",
        "SKINDOC_LOG_FORMAT": "text",
    }
    with pytest.raises(RuntimeError) as refused:
        start_server(env, tmp_path / "owner.log", ready_timeout=60)
    assert "Refusing to serve" in str(refused.value) and "superuser" in str(refused.value)


async def test_embedded_mode_serves_as_a_runtime_role_too(tmp_path, monkeypatch):
    import pgserver

    for name in ("SKINDOC_DATABASE_URL", "SKINDOC_REDIS_URL", "SKINDOC_DATABASE_OWNER_URL"):
        monkeypatch.delenv(name, raising=False)
    server = start_server({"SKINDOC_DATA_DIR": str(tmp_path / "var")}, tmp_path / "embedded.log")
    postgres = pgserver.get_server(tmp_path / "var" / "postgres", cleanup_mode="stop")
    try:
        async with aiohttp.ClientSession(server.url) as http:
            await register(http)
        owner = await asyncpg.connect(postgres.get_uri())
        try:
            serving_roles = {
                row["usename"]
                for row in await owner.fetch(
                    "SELECT DISTINCT usename FROM pg_stat_activity WHERE backend_type = 'client backend' "
                    "AND pid <> pg_backend_pid()"
                )
            }
            assert serving_roles == {"skindoc_runtime"}
            assert not await owner.fetchval("SELECT has_table_privilege('skindoc_runtime', 'audit_log', 'UPDATE')")
        finally:
            await owner.close()
    finally:
        server.stop()
        postgres.cleanup()
