"""The audit log: a row for each audited action, append-only in the database, and a hash chain that
`skindoc audit verify` checks, naming the first row altered behind the application's back."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest
from aiohttp import web

from auth import audit
from auth.authz import authenticate
from auth.context import audit_context
from tests.test_auth_accounts import PASSWORD, bearer, login, register, signed_in
from tests.test_auth_admin import run_cli  # noqa: F401  (fixture)
from web.app import STORES, create_app


async def _actions(db) -> list[dict]:
    rows = await db.fetch("SELECT * FROM audit_log ORDER BY id")
    # The test's own connection has no jsonb codec: decode details here.
    return [{**dict(row), "details": json.loads(row["details"])} for row in rows]


async def test_each_audited_action_writes_a_row(client, db):
    # A client's request id is never written as ours: the audit row carries the server's.
    headers = {"X-Request-Id": "cli"}
    response = await client.post(
        "/api/v1/auth/register",
        headers=headers,
        json={"email": "audited@example.com", "password": PASSWORD, "name": "Au Dit"},
    )
    server_request_id = response.headers["X-Request-Id"]
    assert response.headers["X-Client-Request-Id"] == "cli" and server_request_id != "cli"
    user = (await response.json())["user"]
    await client.post("/api/v1/auth/login", json={"email": "audited@example.com", "password": "wrong" * 3})
    tokens = await login(client, "audited@example.com")
    await client.patch("/api/v1/me", json={"name": "Renamed"}, headers=bearer(tokens))
    await client.patch(
        "/api/v1/me",
        json={"current_password": PASSWORD, "new_password": "a brand new passphrase"},
        headers=bearer(tokens),
    )
    tokens = await login(client, "audited@example.com", "a brand new passphrase")
    rotated = await (await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})).json()
    await client.post("/api/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]})  # past the grace
    await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})  # reuse
    session = await login(client, "audited@example.com", "a brand new passphrase")
    await client.post("/api/v1/auth/logout", json={"refresh_token": session["refresh_token"]}, headers=bearer(session))
    doctor = await register(client, "doc@example.com", role="doctor")
    admin = await signed_in(client, "admin@example.com", role="admin")
    await client.post(f"/api/v1/admin/doctors/{doctor['id']}/approve", headers=bearer(admin))
    await client.get("/api/v1/admin/audit?action=auth.login", headers=bearer(admin))
    assert rotated["user"]["id"] == user["id"]

    rows = await _actions(db)
    actions = [r["action"] for r in rows]
    assert actions == [
        "auth.register",
        "auth.login_failed",
        "auth.login",
        "user.profile_update",
        "user.password_change",
        "auth.login",
        "auth.refresh_reuse_detected",
        "auth.login",
        "auth.logout",
        "auth.register",
        "admin.create",
        "auth.login",
        "admin.doctor_approve",
        "admin.audit_search",
    ]
    first = rows[0]
    assert first["subject_type"] == "user" and first["subject_id"] == user["id"]
    assert first["request_id"] == server_request_id and str(first["client_ip"]) == "127.0.0.1"
    assert first["actor_id"] is None  # nobody was signed in yet
    failed = rows[1]
    assert failed["subject_id"] == user["id"] and failed["details"] == {"email": "audited@example.com"}
    signed = rows[2]
    assert str(signed["actor_id"]) == user["id"] and signed["actor_role"] == "patient"
    approve = rows[12]
    assert str(approve["actor_id"]) == admin["user"]["id"] and approve["actor_role"] == "admin"
    assert approve["subject_id"] == doctor["id"]
    assert approve["details"]["status"] == {"from": "pending", "to": "active"}
    assert all(r["request_id"] for r in rows if r["action"] != "admin.create")
    ids = [r["id"] for r in rows]
    assert ids == list(range(1, len(rows) + 1))


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET action = 'nothing.happened'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ],
)
async def test_audit_rows_cannot_be_changed_or_removed(client, db, statement):
    await register(client, "keep@example.com")
    before = await _actions(db)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await db.execute(statement)
    assert await _actions(db) == before


async def _tamper(db, *statements: str) -> None:
    """Runs statements on the audit log as its owner, with the append-only trigger off: what an intruder with
    DDL rights could do behind the application's back."""
    await db.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
    for statement in statements:
        await db.execute(statement)
    await db.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")


async def test_verify_finds_a_row_altered_behind_the_applications_back(client, db, run_cli):  # noqa: F811
    for n in range(4):
        await register(client, f"user{n}@example.com")
    status, out, _ = await run_cli("audit", "verify")
    assert status == 0 and "intact: 4 rows" in out

    await _tamper(db, "UPDATE audit_log SET details = '{\"role\": \"admin\"}' WHERE id = 3")
    status, out, _ = await run_cli("audit", "verify")
    assert status == 1
    assert "broken at row 3" in out and "contents" in out


async def test_verify_finds_a_rehashed_row_by_its_broken_link(client, db, run_cli):  # noqa: F811
    """An intruder who recomputes the altered row's own hash still breaks the next row's link."""
    for n in range(4):
        await register(client, f"user{n}@example.com")
    await _tamper(
        db,
        "UPDATE audit_log SET subject_id = 'someone-else' WHERE id = 2",
        "UPDATE audit_log a SET hash = audit_log_digest(a) WHERE id = 2",
    )
    status, out, _ = await run_cli("audit", "verify")
    assert status == 1 and "broken at row 3" in out and "link" in out


async def test_verify_finds_a_deleted_row(client, db, run_cli):  # noqa: F811
    for n in range(3):
        await register(client, f"user{n}@example.com")
    await _tamper(db, "DELETE FROM audit_log WHERE id = 2")
    status, out, _ = await run_cli("audit", "verify")
    assert status == 1 and "broken at row 3" in out and "missing" in out


async def test_concurrent_writers_keep_one_chain(database_url, db):
    """Many connections appending at once: the lock serialises them, so ids are gapless and every link holds."""
    conns = [await asyncpg.connect(database_url) for _ in range(8)]
    try:

        async def write(conn, n: int) -> None:
            for i in range(10):
                async with conn.transaction():
                    await audit.AuditContext(None).record(conn, "test.write", "test", f"{n}-{i}", {"n": n, "i": i})

        await asyncio.gather(*(write(conn, n) for n, conn in enumerate(conns)))
    finally:
        for conn in conns:
            await conn.close()
    from auth.audit_chain import verify_chain

    result = await verify_chain(db, b"k" * 32)
    assert (result.checked, result.broken, result.unsigned) == (80, None, 80)


async def test_audit_context_of_a_request_fills_in_the_caller(aiohttp_client, settings, db):
    async def read_something(request: web.Request) -> web.Response:
        await authenticate(request)
        async with request.app[STORES].pool.acquire() as conn:
            await audit_context(request).record(conn, "consultation.read", "consultation", "c-1", {"fields": ["notes"]})
        return web.json_response({})

    app = create_app(settings)
    app.router.add_get("/test/read", read_something)
    client = await aiohttp_client(app)
    tokens = await signed_in(client, "reader@example.com")
    response = await client.get("/test/read", headers={**bearer(tokens), "X-Request-Id": "req-42"})
    assert response.status == 200
    [row] = [r for r in await _actions(db) if r["action"] == "consultation.read"]
    assert str(row["actor_id"]) == tokens["user"]["id"] and row["actor_role"] == "patient"
    assert row["subject_type"] == "consultation" and row["subject_id"] == "c-1"
    assert row["request_id"] == response.headers["X-Request-Id"] != "req-42" and str(row["client_ip"]) == "127.0.0.1"
    assert row["details"] == {"fields": ["notes"]}


async def test_admin_audit_search_filters_and_pages(client):
    patient = await signed_in(client, "p@example.com")
    for _ in range(2):
        await login(client, "p@example.com")
    admin = await signed_in(client, "admin@example.com", role="admin")

    async def search(query: str) -> dict:
        response = await client.get(f"/api/v1/admin/audit?{query}", headers=bearer(admin))
        assert response.status == 200, await response.text()
        return await response.json()

    logins = await search(f"action=auth.login&actor={patient['user']['id']}")
    assert [e["action"] for e in logins["entries"]] == ["auth.login"] * 3
    assert logins["next_before"] is None
    ids = [e["id"] for e in logins["entries"]]
    assert ids == sorted(ids, reverse=True)

    page1 = await search("limit=2")
    assert len(page1["entries"]) == 2 and page1["next_before"] == page1["entries"][-1]["id"]
    page2 = await search(f"limit=2&before={page1['next_before']}")
    assert page2["entries"][0]["id"] < page1["entries"][-1]["id"]

    subject = await search(f"subject_type=user&subject_id={patient['user']['id']}&action=auth.register")
    assert len(subject["entries"]) == 1
    assert (await search("since=2999-01-01T00:00:00Z"))["entries"] == []
    assert len((await search("until=2999-01-01T00:00:00%2B00:00&limit=200"))["entries"]) > 0

    for bad in ("actor=nope", "since=yesterday", "since=2024-01-01T00:00:00", "limit=500", "before=0"):
        response = await client.get(f"/api/v1/admin/audit?{bad}", headers=bearer(admin))
        assert response.status == 422, bad
