"""Bad input to the auth routes: malformed JSON, wrong types, missing fields, oversized or non-JSON bodies.
Each gets a typed problem document and writes nothing."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.test_auth_accounts import PASSWORD, bearer, signed_in

ROUTES = [
    "/api/v1/auth/register",
    "/api/v1/auth/login",
    "/api/v1/auth/refresh",
    "/api/v1/auth/logout",
    "/api/v1/auth/oidc",
    "/api/v1/me",
]


async def _counts(db) -> tuple:
    return tuple(
        [
            await db.fetchval(f"SELECT count(*) FROM {table}")
            for table in ("users", "refresh_tokens", "refresh_families", "audit_log", "oidc_identities")
        ]
    )


async def _send(client, path: str, headers: dict, **kwargs):
    method = client.patch if path == "/api/v1/me" else client.post
    return await method(path, headers=headers, **kwargs)


async def _problem(response, status: int, code: str) -> dict:
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    body = await response.json()
    assert body["code"] == code and body["status"] == status
    return body


@pytest.fixture
async def session(client):
    return await signed_in(client, "someone@example.com")


async def test_malformed_json_non_objects_and_wrong_media_type(client, db, session):
    before = await _counts(db)
    headers = {**bearer(session), "Content-Type": "application/json"}
    for path in ROUTES:
        await _problem(await _send(client, path, headers, data=b'{"email": '), 400, "malformed_json")
        await _problem(await _send(client, path, headers, data=b"\xff\xfe"), 400, "malformed_json")
        await _problem(await _send(client, path, headers, data=b""), 400, "malformed_json")
        for not_an_object in (b"[]", b'"text"', b"42", b"null"):
            await _problem(await _send(client, path, headers, data=not_an_object), 422, "invalid_payload")
        form = {**bearer(session), "Content-Type": "application/x-www-form-urlencoded"}
        await _problem(await _send(client, path, form, data=b"email=a"), 415, "unsupported_media_type")
    assert await _counts(db) == before


async def test_oversized_bodies_are_413(client, db, session):
    before = await _counts(db)
    big = json.dumps({"email": "a@example.com", "password": PASSWORD, "name": "x" * (70 * 1024)}).encode()

    async def chunked():
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    for path in ROUTES:
        await _problem(
            await _send(client, path, {**bearer(session), "Content-Type": "application/json"}, data=big),
            413,
            "payload_too_large",
        )
        # Without a Content-Length the limit still holds.
        await _problem(
            await _send(client, path, {**bearer(session), "Content-Type": "application/json"}, data=chunked()),
            413,
            "payload_too_large",
        )
    assert await _counts(db) == before


async def test_a_body_arriving_in_pieces_is_read_whole(client, db):
    body = json.dumps({"email": "slow@example.com", "password": PASSWORD, "name": "Slow", "padding": "x" * 40_000})

    async def trickle():
        for start in range(0, len(body), 4096):
            yield body[start : start + 4096].encode()
            await asyncio.sleep(0.005)

    response = await client.post("/api/v1/auth/register", data=trickle(), headers={"Content-Type": "application/json"})
    assert response.status == 201, await response.text()
    assert await db.fetchval("SELECT email FROM users") == "slow@example.com"


REGISTER = "/api/v1/auth/register"


def registration(**changes) -> dict:
    """A valid registration body, some fields changed."""
    return {"email": "a@example.com", "password": PASSWORD, "name": "N", **changes}


CASES = [
    # (path, body, expected code, field)
    (REGISTER, {"password": PASSWORD, "name": "N"}, "missing_field", "email"),
    (REGISTER, {"email": "a@example.com", "name": "N"}, "missing_field", "password"),
    (REGISTER, {"email": "a@example.com", "password": PASSWORD}, "missing_field", "name"),
    (REGISTER, registration(email=7), "invalid_field", "email"),
    (REGISTER, registration(email="no-at-sign"), "invalid_field", "email"),
    (REGISTER, registration(password=["x"]), "invalid_field", "password"),
    (REGISTER, registration(name={}), "invalid_field", "name"),
    (REGISTER, registration(name="   "), "invalid_field", "name"),
    (REGISTER, registration(name="x" * 101), "invalid_field", "name"),
    (REGISTER, registration(role="admin"), "invalid_field", "role"),
    (REGISTER, registration(password="x" * 1025), "invalid_field", "password"),
    ("/api/v1/auth/login", {"email": "someone@example.com"}, "missing_field", "password"),
    ("/api/v1/auth/login", {"email": "someone@example.com", "password": 12345678}, "invalid_field", "password"),
    ("/api/v1/auth/login", {"email": None, "password": PASSWORD}, "missing_field", "email"),
    ("/api/v1/auth/refresh", {}, "missing_field", "refresh_token"),
    ("/api/v1/auth/refresh", {"refresh_token": True}, "invalid_field", "refresh_token"),
    ("/api/v1/auth/refresh", {"refresh_token": ""}, "invalid_field", "refresh_token"),
    ("/api/v1/auth/logout", {}, "missing_field", "refresh_token"),
    ("/api/v1/auth/oidc", {}, "missing_field", "id_token"),
    ("/api/v1/auth/oidc", {"id_token": 1}, "invalid_field", "id_token"),
    ("/api/v1/me", {"name": 5}, "invalid_field", "name"),
    ("/api/v1/me", {"role": "admin"}, "unknown_field", "role"),
    ("/api/v1/me", {"new_password": 12}, "invalid_field", "new_password"),
    # Valid JSON that PostgreSQL or UTF-8 cannot hold (found by schemathesis as 500s).
    (REGISTER, registration(name="A\u0000b"), "invalid_field", "name"),
    (REGISTER, registration(name="A\x07b"), "invalid_field", "name"),
    (REGISTER, registration(name="A\ud800b"), "invalid_field", "name"),
    (REGISTER, registration(email="a\u0000@example.com"), "invalid_field", "email"),
    (REGISTER, registration(password=PASSWORD + "\udc00"), "invalid_field", "password"),
    ("/api/v1/auth/login", {"email": "a@example.com", "password": "\ud800" * 12}, "invalid_field", "password"),
    ("/api/v1/auth/refresh", {"refresh_token": "\udfff"}, "invalid_field", "refresh_token"),
    ("/api/v1/auth/oidc", {"id_token": "a.b\ud800.c"}, "invalid_field", "id_token"),
    ("/api/v1/me", {"name": "\ud800"}, "invalid_field", "name"),
]


async def test_unstorable_query_text_and_request_ids_are_handled(client, db):
    admin = await signed_in(client, "admin@example.com", role="admin")
    for query in ("action=a%00b", "subject_type=x%00"):
        response = await client.get(f"/api/v1/admin/audit?{query}", headers=bearer(admin))
        assert response.status == 422, query
    # A client's odd request id neither fails the request nor reaches the audit log (nor is echoed).
    response = await client.post(
        "/api/v1/auth/register",
        headers={"X-Request-Id": "id\u00e9x"},
        json={"email": "rid@example.com", "password": PASSWORD, "name": "R"},
    )
    assert response.status == 201 and "X-Client-Request-Id" not in response.headers
    assert (
        await db.fetchval("SELECT request_id FROM audit_log WHERE action = 'auth.register' ORDER BY id DESC LIMIT 1")
        == response.headers["X-Request-Id"]
    )


@pytest.mark.parametrize("path, body, code, field", CASES)
async def test_wrong_or_missing_fields_are_422_naming_the_field(client, db, session, path, body, code, field):
    before = await _counts(db)
    name_before = await db.fetchval("SELECT display_name FROM users")
    problem = await _problem(await _send(client, path, bearer(session), json=body), 422, code)
    assert problem["field"] == field
    assert await _counts(db) == before
    assert await db.fetchval("SELECT display_name FROM users") == name_before
