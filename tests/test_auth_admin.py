"""Doctor approval (HTTP and `skindoc admin approve`), `skindoc admin create`, and sign-in throttling."""

from __future__ import annotations

import asyncio
import io
import uuid

import pytest

from tests.test_auth_accounts import PASSWORD, bearer, login, register, signed_in


@pytest.fixture
def run_cli(monkeypatch, settings):
    """Runs `skindoc ARGS` in a worker thread against the test's database and Redis; returns (status, stdout)."""
    from web import cli

    monkeypatch.setenv("SKINDOC_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("SKINDOC_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("SKINDOC_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("SKINDOC_LOG_FORMAT", "text")

    async def run(*args: str, stdin: str = "") -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        monkeypatch.setattr("sys.stdout", out)
        monkeypatch.setattr("sys.stderr", err)
        try:
            status = await asyncio.to_thread(cli.main, list(args))
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 2
            err.write(str(exc.code))
        return status, out.getvalue(), err.getvalue()

    return run


async def test_doctor_approval_flow(client, db):
    doctor_tokens = await signed_in(client, "dr.who@example.com", role="doctor")
    doctor = doctor_tokens["user"]
    assert doctor["status"] == "pending"
    admin = await signed_in(client, "admin@example.com", role="admin")

    pending = await client.get("/api/v1/admin/doctors?status=pending", headers=bearer(admin))
    assert [d["id"] for d in (await pending.json())["doctors"]] == [doctor["id"]]

    approved = await client.post(f"/api/v1/admin/doctors/{doctor['id']}/approve", headers=bearer(admin))
    assert approved.status == 200
    assert (await approved.json())["user"]["status"] == "active"
    # The doctor's existing token sees the approval at once.
    me = await client.get("/api/v1/me", headers=bearer(doctor_tokens))
    assert (await me.json())["user"]["status"] == "active"
    pending = await client.get("/api/v1/admin/doctors", headers=bearer(admin))
    assert (await pending.json())["doctors"] == []
    active = await client.get("/api/v1/admin/doctors?status=active", headers=bearer(admin))
    assert [d["id"] for d in (await active.json())["doctors"]] == [doctor["id"]]

    row = await db.fetchrow("SELECT approved_by, approved_at FROM users WHERE id = $1", uuid.UUID(doctor["id"]))
    assert str(row["approved_by"]) == admin["user"]["id"] and row["approved_at"] is not None

    again = await client.post(f"/api/v1/admin/doctors/{doctor['id']}/approve", headers=bearer(admin))
    assert again.status == 409 and (await again.json())["code"] == "not_pending"


async def test_approving_what_is_not_a_pending_doctor(client):
    admin = await signed_in(client, "admin@example.com", role="admin")
    patient = await register(client, "pat@example.com")
    for target, status, code in (
        (patient["id"], 404, "doctor_not_found"),
        (str(uuid.uuid4()), 404, "doctor_not_found"),
        ("not-a-uuid", 404, "doctor_not_found"),
    ):
        response = await client.post(f"/api/v1/admin/doctors/{target}/approve", headers=bearer(admin))
        assert response.status == status and (await response.json())["code"] == code


async def test_doctor_list_rejects_bad_query(client):
    admin = await signed_in(client, "admin@example.com", role="admin")
    for query in ("status=nope", "limit=0", "limit=abc", "offset=-1"):
        response = await client.get(f"/api/v1/admin/doctors?{query}", headers=bearer(admin))
        assert response.status == 422, query


async def test_cli_creates_an_admin_and_approves_a_doctor(client, run_cli, db):
    status, out, err = await run_cli(
        "admin",
        "create",
        "--email",
        "Root@Example.com",
        "--name",
        "Root",
        "--password-stdin",
        stdin="a proper admin passphrase\n",
    )
    assert status == 0, err
    assert "root@example.com" in out
    tokens = await login(client, "root@example.com", "a proper admin passphrase")
    assert tokens["user"]["role"] == "admin"

    doctor = await register(client, "dr.cli@example.com", role="doctor")
    status, out, err = await run_cli("admin", "approve", "DR.CLI@example.com")
    assert status == 0, err
    assert await db.fetchval("SELECT status FROM users WHERE id = $1", uuid.UUID(doctor["id"])) == "active"
    status, _, err = await run_cli("admin", "approve", doctor["id"])
    assert status == 2 and "not pending" in err
    status, _, err = await run_cli("admin", "approve", "nobody@example.com")
    assert status == 2 and "No account" in err


async def test_cli_admin_create_refuses_weak_or_missing_passwords(client, run_cli, db):
    status, _, err = await run_cli(
        "admin", "create", "--email", "a@example.com", "--name", "A", "--password-stdin", stdin="password123\n"
    )
    assert status == 2 and "password" in err
    # No terminal and no --password-stdin: refuse rather than invent a password.
    status, _, err = await run_cli("admin", "create", "--email", "a@example.com", "--name", "A")
    assert status != 0 and "--password-stdin" in err
    status, _, err = await run_cli(
        "admin",
        "create",
        "--email",
        "not-an-email",
        "--name",
        "A",
        "--password-stdin",
        stdin="a proper admin passphrase\n",
    )
    assert status == 2
    assert await db.fetchval("SELECT count(*) FROM users") == 0


async def test_account_is_throttled_after_ten_failures(client):
    await register(client, "target@example.com")
    for _ in range(10):
        response = await client.post("/api/v1/auth/login", json={"email": "target@example.com", "password": "x" * 12})
        assert response.status == 401
    # Now even the right password is turned away until the window passes.
    response = await client.post("/api/v1/auth/login", json={"email": "target@example.com", "password": PASSWORD})
    assert response.status == 429
    body = await response.json()
    assert body["code"] == "too_many_attempts"
    assert 0 < int(response.headers["Retry-After"]) <= 900 and body["retry_after"] == int(
        response.headers["Retry-After"]
    )


async def test_success_clears_the_account_counter(client, redis_url):
    import redis.asyncio as redis_asyncio

    await register(client, "forgetful@example.com")
    for _ in range(9):
        await client.post("/api/v1/auth/login", json={"email": "forgetful@example.com", "password": "x" * 12})
    await login(client, "forgetful@example.com")
    # The address's counter is not cleared by a success (one good account must not unlock guessing
    # at others); drop it here to watch the account's counter alone.
    redis = redis_asyncio.Redis.from_url(redis_url)
    assert await redis.delete("skindoc:auth:login-failures:ip:127.0.0.1") == 1
    await redis.aclose()
    for _ in range(9):
        response = await client.post(
            "/api/v1/auth/login", json={"email": "forgetful@example.com", "password": "x" * 12}
        )
        assert response.status == 401
    await login(client, "forgetful@example.com")


async def test_address_is_throttled_across_accounts(client):
    await register(client, "innocent@example.com")
    for n in range(10):
        response = await client.post(
            "/api/v1/auth/login", json={"email": f"guess{n}@example.com", "password": "x" * 12}
        )
        assert response.status == 401
    response = await client.post("/api/v1/auth/login", json={"email": "innocent@example.com", "password": PASSWORD})
    assert response.status == 429
    assert "Retry-After" in response.headers


async def test_password_change_guesses_are_throttled_too(client):
    """A stolen access token must not turn PATCH /me into a password-guessing oracle."""
    tokens = await signed_in(client, "victim@example.com")
    guess = {"current_password": "x" * 12, "new_password": "a new passphrase for me"}
    for _ in range(10):
        response = await client.patch("/api/v1/me", json=guess, headers=bearer(tokens))
        assert response.status == 403
    right = {**guess, "current_password": PASSWORD}
    response = await client.patch("/api/v1/me", json=right, headers=bearer(tokens))
    assert response.status == 429 and "Retry-After" in response.headers
    refused = await client.post("/api/v1/auth/login", json={"email": "victim@example.com", "password": PASSWORD})
    assert refused.status == 429
