"""Every auth route × every kind of caller → the expected status, plus require_role on a clinical route."""

from __future__ import annotations

import itertools

from aiohttp import web

from auth.authz import require_role
from tests.test_auth_accounts import PASSWORD, approved_doctor, bearer, login, register, signed_in
from web.app import create_app

CALLERS = ("anonymous", "patient", "pending_doctor", "doctor", "admin")
_unique = itertools.count()


def _email() -> str:
    return f"matrix{next(_unique)}@example.com"


async def _request(client, route: str, tokens: dict | None):
    """One call of `route` with a body that is valid, so only the caller decides the answer."""
    headers = bearer(tokens) if tokens else {}
    if route == "POST /api/v1/auth/register":
        return await client.post(
            "/api/v1/auth/register", json={"email": _email(), "password": PASSWORD, "name": "N"}, headers=headers
        )
    if route == "POST /api/v1/auth/login":
        email = _email()
        await register(client, email)
        return await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD}, headers=headers)
    if route == "POST /api/v1/auth/refresh":
        fresh = await signed_in(client, _email())
        return await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": fresh["refresh_token"]}, headers=headers
        )
    if route == "POST /api/v1/auth/logout":
        refresh_token = tokens["refresh_token"] if tokens else "none"
        return await client.post("/api/v1/auth/logout", json={"refresh_token": refresh_token}, headers=headers)
    if route == "POST /api/v1/auth/oidc":
        return await client.post("/api/v1/auth/oidc", json={"id_token": "a.b.c"}, headers=headers)
    if route == "GET /api/v1/me":
        return await client.get("/api/v1/me", headers=headers)
    if route == "PATCH /api/v1/me":
        return await client.patch("/api/v1/me", json={"name": "Renamed"}, headers=headers)
    if route == "GET /api/v1/admin/doctors":
        return await client.get("/api/v1/admin/doctors?status=pending", headers=headers)
    if route == "POST /api/v1/admin/doctors/{id}/approve":
        doctor = await register(client, _email(), role="doctor")
        return await client.post(f"/api/v1/admin/doctors/{doctor['id']}/approve", headers=headers)
    if route == "GET /api/v1/admin/audit":
        return await client.get("/api/v1/admin/audit", headers=headers)
    raise AssertionError(route)


#                                        anonymous patient pending doctor admin
EXPECTED = {
    "POST /api/v1/auth/register": (201, 201, 201, 201, 201),
    "POST /api/v1/auth/login": (200, 200, 200, 200, 200),
    "POST /api/v1/auth/refresh": (200, 200, 200, 200, 200),
    "POST /api/v1/auth/logout": (401, 204, 204, 204, 204),
    "POST /api/v1/auth/oidc": (404, 404, 404, 404, 404),  # no issuer configured here
    "GET /api/v1/me": (401, 200, 200, 200, 200),
    "PATCH /api/v1/me": (401, 200, 200, 200, 200),
    "GET /api/v1/admin/doctors": (401, 403, 403, 403, 200),
    "POST /api/v1/admin/doctors/{id}/approve": (401, 403, 403, 403, 200),
    "GET /api/v1/admin/audit": (401, 403, 403, 403, 200),
}


async def _session(client, caller: str, email: str) -> dict | None:
    """A fresh session of `caller` (new tokens each time, so a logout in one cell spoils no other)."""
    if caller == "anonymous":
        return None
    return await login(client, email)


async def test_authorisation_matrix(client):
    accounts = {
        "patient": (await signed_in(client, "m-patient@example.com"))["user"]["email"],
        "pending_doctor": (await signed_in(client, "m-pending@example.com", role="doctor"))["user"]["email"],
        "doctor": (await approved_doctor(client, "m-doctor@example.com"))["user"]["email"],
        "admin": (await signed_in(client, "m-admin@example.com", role="admin"))["user"]["email"],
    }
    assert set(EXPECTED) == {
        f"{r.method} {r.resource.canonical.replace('{doctor_id}', '{id}')}"
        for r in client.server.app.router.routes()
        if r.resource.canonical.startswith(("/api/v1/auth", "/api/v1/me", "/api/v1/admin")) and r.method != "HEAD"
    }
    failures = []
    for route, statuses in EXPECTED.items():
        for caller, expected in zip(CALLERS, statuses, strict=True):
            tokens = await _session(client, caller, accounts.get(caller, ""))
            response = await _request(client, route, tokens)
            if response.status != expected:
                failures.append(f"{route} as {caller}: {response.status} (expected {expected})")
            if response.status >= 400:
                assert response.content_type == "application/problem+json"
                if response.status == 403:
                    assert (await response.json())["code"] == "forbidden_role"
    assert not failures, "\n".join(failures)


async def test_require_role_keeps_pending_doctors_from_clinical_work(aiohttp_client, settings):
    async def clinical(request: web.Request) -> web.Response:
        principal = await require_role(request, "doctor")
        return web.json_response({"approved": principal.approved})

    async def shared_with_patients(request: web.Request) -> web.Response:
        await require_role(request, "patient", "doctor")
        return web.json_response({})

    app = create_app(settings)
    app.router.add_get("/test/clinical", clinical)
    app.router.add_get("/test/consultation", shared_with_patients)
    client = await aiohttp_client(app)
    pending = await signed_in(client, "pending@example.com", role="doctor")
    doctor = await approved_doctor(client, "approved@example.com")
    patient = await signed_in(client, "patient@example.com")
    admin = await signed_in(client, "admin@example.com", role="admin")

    for path in ("/test/clinical", "/test/consultation"):
        refused = await client.get(path, headers=bearer(pending))
        assert refused.status == 403 and (await refused.json())["code"] == "doctor_not_approved"
    ok = await client.get("/test/clinical", headers=bearer(doctor))
    assert ok.status == 200 and (await ok.json()) == {"approved": True}
    for tokens in (patient, admin):
        refused = await client.get("/test/clinical", headers=bearer(tokens))
        assert refused.status == 403 and (await refused.json())["code"] == "forbidden_role"
    assert (await client.get("/test/consultation", headers=bearer(patient))).status == 200
    assert (await client.get("/test/clinical")).status == 401
