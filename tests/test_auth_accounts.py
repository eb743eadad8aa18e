"""Accounts and sessions over HTTP: sign-up, sign-in, refresh rotation and reuse, logout, expiry, /me.

Also holds the small helpers the other auth test modules use to create accounts.
"""

from __future__ import annotations

import time
import uuid

from joserfc import jwt

from auth import AUTH_SERVICE
from auth.audit import AuditContext
from auth.service import AuthService

PASSWORD = "correct horse battery stapler"


def service_of(client) -> AuthService:
    return client.server.app[AUTH_SERVICE]


def bearer(tokens: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def register(client, email: str, *, role: str = "patient", password: str = PASSWORD, name: str = "Sam Doe"):
    response = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": password, "name": name, "role": role}
    )
    assert response.status == 201, await response.text()
    return (await response.json())["user"]


async def login(client, email: str, password: str = PASSWORD) -> dict:
    response = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status == 200, await response.text()
    return await response.json()


async def signed_in(client, email: str, role: str = "patient") -> dict:
    """Tokens for a new account of `role`; an admin is created as the CLI does, a doctor stays pending."""
    if role == "admin":
        await service_of(client).create_admin(email=email, name="Ada Admin", password=PASSWORD)
    else:
        await register(client, email, role=role)
    return await login(client, email)


async def approved_doctor(client, email: str) -> dict:
    user = await register(client, email, role="doctor")
    await service_of(client).approve_doctor(uuid.UUID(user["id"]), ctx=AuditContext(None))
    return await login(client, email)


async def test_patient_signs_up_and_in(client, db):
    user = await register(client, "  Pat@Example.COM ", name="Pat Smith")
    assert user["email"] == "pat@example.com"
    assert user["role"] == "patient" and user["status"] == "active" and user["name"] == "Pat Smith"
    stored = await db.fetchrow("SELECT password_hash FROM users WHERE id = $1", uuid.UUID(user["id"]))
    assert stored["password_hash"].startswith("$argon2id$")

    tokens = await login(client, "PAT@example.com")
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 900
    assert tokens["user"] == user
    me = await client.get("/api/v1/me", headers=bearer(tokens))
    assert me.status == 200
    assert (await me.json())["user"] == user


async def test_access_token_claims(client):
    tokens = await signed_in(client, "claims@example.com")
    claims = jwt.decode(tokens["access_token"], service_of(client).tokens._key, algorithms=["ES256"]).claims
    assert set(claims) >= {"sub", "role", "iat", "exp", "jti", "iss", "aud"}
    assert claims["sub"] == tokens["user"]["id"] and claims["role"] == "patient"
    assert claims["iss"] == "skindoc" and claims["aud"] == "skindoc-api"
    assert claims["exp"] - claims["iat"] == 900


async def test_duplicate_email_is_409_and_writes_nothing(client, db):
    await register(client, "dup@example.com")
    response = await client.post(
        "/api/v1/auth/register", json={"email": "DUP@example.com", "password": PASSWORD, "name": "Other"}
    )
    assert response.status == 409
    assert (await response.json())["code"] == "email_taken"
    assert await db.fetchval("SELECT count(*) FROM users") == 1


async def test_weak_passwords_are_refused(client, db):
    for password, reason in (("short", "too short"), ("password1234", "common"), ("Password1234", "common")):
        response = await client.post(
            "/api/v1/auth/register", json={"email": "weak@example.com", "password": password, "name": "W"}
        )
        assert response.status == 422, reason
        body = await response.json()
        assert body["code"] == "weak_password" and body["field"] == "password"
    assert await db.fetchval("SELECT count(*) FROM users") == 0


async def test_wrong_password_and_unknown_email_look_the_same(client):
    await register(client, "known@example.com")
    wrong = await client.post("/api/v1/auth/login", json={"email": "known@example.com", "password": "nope" * 4})
    unknown = await client.post("/api/v1/auth/login", json={"email": "ghost@example.com", "password": "nope" * 4})
    assert wrong.status == unknown.status == 401
    assert (await wrong.json())["code"] == (await unknown.json())["code"] == "invalid_credentials"


async def test_refresh_rotates_and_old_token_is_spent(client, db):
    first = await signed_in(client, "rot@example.com")
    response = await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert response.status == 200
    second = await response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["user"] == first["user"]
    assert (await client.get("/api/v1/me", headers=bearer(second))).status == 200
    assert await db.fetchval("SELECT count(*) FROM refresh_tokens") == 2
    # Only hashes are stored.
    assert (
        await db.fetchval(
            "SELECT count(*) FROM refresh_tokens WHERE token_hash = convert_to($1, 'UTF8')", second["refresh_token"]
        )
        == 0
    )

    third = await client.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert third.status == 200


async def test_refresh_reuse_revokes_the_family(client, db):
    first = await signed_in(client, "thief@example.com")
    other_session = await login(client, "thief@example.com")
    rotated = await (await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})).json()
    # The holder refreshes again: the first token's successor is spent, so no grace for the first.
    rotated = await (await client.post("/api/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]})).json()

    reuse = await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reuse.status == 401
    assert (await reuse.json())["code"] == "refresh_token_reused"
    # The legitimate holder's newer token dies with the family ...
    after = await client.post("/api/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert after.status == 401 and (await after.json())["code"] == "invalid_refresh_token"
    # ... but a separate sign-in is another family and survives.
    other = await client.post("/api/v1/auth/refresh", json={"refresh_token": other_session["refresh_token"]})
    assert other.status == 200
    reasons = await db.fetch("SELECT revoked_reason FROM refresh_families WHERE revoked_at IS NOT NULL")
    assert [r["revoked_reason"] for r in reasons] == ["reuse_detected"]


async def test_unknown_refresh_token_is_401(client):
    response = await client.post("/api/v1/auth/refresh", json={"refresh_token": "not-a-token"})
    assert response.status == 401
    assert (await response.json())["code"] == "invalid_refresh_token"


async def test_expired_refresh_token_is_401(client, db):
    tokens = await signed_in(client, "stale@example.com")
    await db.execute("UPDATE refresh_tokens SET expires_at = now() - interval '1 second'")
    response = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert response.status == 401
    assert (await response.json())["code"] == "invalid_refresh_token"


async def test_logout_refuses_the_access_token_and_the_refresh_family(client, redis_url):
    tokens = await signed_in(client, "bye@example.com")
    response = await client.post(
        "/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]}, headers=bearer(tokens)
    )
    assert response.status == 204
    me = await client.get("/api/v1/me", headers=bearer(tokens))
    assert me.status == 401 and (await me.json())["code"] == "invalid_token"
    refresh = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refresh.status == 401
    # The revocation is kept in PostgreSQL: losing Redis does not bring the token back.
    import redis.asyncio as redis_asyncio

    redis = redis_asyncio.Redis.from_url(redis_url)
    await redis.flushdb()
    await redis.aclose()
    assert (await client.get("/api/v1/me", headers=bearer(tokens))).status == 401


async def test_logout_with_someone_elses_refresh_token_changes_nothing(client, db):
    mine = await signed_in(client, "me@example.com")
    theirs = await signed_in(client, "them@example.com")
    response = await client.post(
        "/api/v1/auth/logout", json={"refresh_token": theirs["refresh_token"]}, headers=bearer(mine)
    )
    assert response.status == 401
    assert await db.fetchval("SELECT count(*) FROM refresh_families WHERE revoked_at IS NOT NULL") == 0
    assert (await client.get("/api/v1/me", headers=bearer(mine))).status == 200


async def test_expired_access_token_is_refused(client):
    tokens = await signed_in(client, "late@example.com")
    service = service_of(client)
    now = int(time.time())
    claims = jwt.decode(tokens["access_token"], service.tokens._key, algorithms=["ES256"]).claims
    expired = jwt.encode(
        {"alg": "ES256"}, {**claims, "iat": now - 1000, "exp": now - 100}, service.tokens._key, algorithms=["ES256"]
    )
    response = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {expired}"})
    assert response.status == 401
    assert (await response.json())["code"] == "token_expired"


async def test_missing_token_is_401_with_challenge(client):
    response = await client.get("/api/v1/me")
    assert response.status == 401
    assert response.content_type == "application/problem+json"
    assert (await response.json())["code"] == "missing_token"
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_patch_me_changes_name(client, db):
    tokens = await signed_in(client, "rename@example.com")
    response = await client.patch("/api/v1/me", json={"name": "New Name"}, headers=bearer(tokens))
    assert response.status == 200
    assert (await response.json())["user"]["name"] == "New Name"
    assert await db.fetchval("SELECT display_name FROM users") == "New Name"


async def test_password_change_needs_the_old_password_and_signs_other_sessions_out(client, db):
    tokens = await signed_in(client, "pw@example.com")
    other = await login(client, "pw@example.com")
    new_password = "an entirely different passphrase"
    wrong = await client.patch(
        "/api/v1/me", json={"current_password": "wrong" * 4, "new_password": new_password}, headers=bearer(tokens)
    )
    assert wrong.status == 403 and (await wrong.json())["code"] == "wrong_password"
    missing = await client.patch("/api/v1/me", json={"new_password": new_password}, headers=bearer(tokens))
    assert missing.status == 422 and (await missing.json())["field"] == "current_password"
    weak = await client.patch(
        "/api/v1/me", json={"current_password": PASSWORD, "new_password": "qwerty123456"}, headers=bearer(tokens)
    )
    assert weak.status == 422 and (await weak.json())["code"] == "weak_password"
    await login(client, "pw@example.com")  # nothing changed so far

    ok = await client.patch(
        "/api/v1/me", json={"current_password": PASSWORD, "new_password": new_password}, headers=bearer(tokens)
    )
    assert ok.status == 200
    await login(client, "pw@example.com", new_password)
    refused = await client.post("/api/v1/auth/login", json={"email": "pw@example.com", "password": PASSWORD})
    assert refused.status == 401
    stale = await client.post("/api/v1/auth/refresh", json={"refresh_token": other["refresh_token"]})
    assert stale.status == 401


async def test_login_rehashes_when_the_cost_changes(aiohttp_client, settings, db):
    from dataclasses import replace

    from web.app import create_app

    cheap = await aiohttp_client(create_app(settings))
    user = await register(cheap, "rehash@example.com")
    before = await db.fetchval("SELECT password_hash FROM users")
    assert "t=1" in before
    dearer = replace(settings, auth=replace(settings.auth, argon2_time_cost=2))
    client = await aiohttp_client(create_app(dearer))
    await login(client, "rehash@example.com")
    after = await db.fetchval("SELECT password_hash FROM users WHERE id = $1", uuid.UUID(user["id"]))
    assert after != before and "t=2" in after
    await login(client, "rehash@example.com")
    assert await db.fetchval("SELECT password_hash FROM users") == after
