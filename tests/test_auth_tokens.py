"""Forged and doctored access tokens: each is refused with 401 and changes nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import replace

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from tests.test_auth_accounts import register, signed_in

SERVER_KEY = ECKey.generate_key("P-256")
OTHER_KEY = ECKey.generate_key("P-256")


@pytest.fixture
def settings(settings):
    return replace(settings, auth=replace(settings.auth, jwt_key=SERVER_KEY.as_pem(private=True).decode()))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact(header: dict, claims: dict, signature: bytes = b"") -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}.{b64(signature)}"


def hs256_with_public_key(claims: dict) -> str:
    """The classic confusion: HMAC keyed with the server's public key, which anyone can have."""
    header = {"alg": "HS256", "typ": "JWT"}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    secret = SERVER_KEY.as_pem(private=False)
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def es256(claims: dict, key: ECKey = SERVER_KEY) -> str:
    return jwt.encode({"alg": "ES256"}, claims, key, algorithms=["ES256"])


def claims_of(token: str) -> dict:
    return jwt.decode(token, SERVER_KEY, algorithms=["ES256"]).claims


def tamper_payload(token: str, **changes) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return f"{header}.{b64(json.dumps({**claims, **changes}).encode())}.{signature}"


def forgeries(patient_token: str) -> dict[str, tuple[str, str]]:
    """name → (token that claims to be an admin, expected problem code)."""
    admin_claims = {**claims_of(patient_token), "role": "admin"}
    now = int(time.time())
    return {
        "alg none": (compact({"alg": "none", "typ": "JWT"}, admin_claims), "invalid_token"),
        "alg None": (compact({"alg": "None"}, admin_claims), "invalid_token"),
        "HS256 keyed with the public key": (hs256_with_public_key(admin_claims), "invalid_token"),
        "signed with another key": (es256(admin_claims, OTHER_KEY), "invalid_token"),
        "role claim tampered": (tamper_payload(patient_token, role="admin"), "invalid_token"),
        "wrong audience": (es256({**admin_claims, "aud": "some-other-api"}), "invalid_token"),
        "wrong issuer": (es256({**admin_claims, "iss": "https://evil.example"}), "invalid_token"),
        "expired": (es256({**admin_claims, "iat": now - 2000, "exp": now - 1000}), "token_expired"),
        "no jti": (es256({k: v for k, v in admin_claims.items() if k != "jti"}), "invalid_token"),
        "unknown role": (es256({**admin_claims, "role": "superuser"}), "invalid_token"),
        "sub not a uuid": (es256({**admin_claims, "sub": "admin"}), "invalid_token"),
        "garbage": ("not.a.jwt", "invalid_token"),
        "signature stripped": (patient_token.rsplit(".", 1)[0] + ".", "invalid_token"),
    }


async def test_every_forgery_is_refused_and_changes_nothing(client, db):
    tokens = await signed_in(client, "mallory@example.com")
    doctor = await register(client, "pending.doc@example.com", role="doctor")
    # The unmodified token works, so the refusals below are about the forgeries.
    assert (await client.get("/api/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})).status == 200

    for name, (forged, code) in forgeries(tokens["access_token"]).items():
        headers = {"Authorization": f"Bearer {forged}"}
        me = await client.get("/api/v1/me", headers=headers)
        assert me.status == 401, name
        body = await me.json()
        assert body["code"] == code, name
        rename = await client.patch("/api/v1/me", json={"name": "Pwned"}, headers=headers)
        assert rename.status == 401, name
        approve = await client.post(f"/api/v1/admin/doctors/{doctor['id']}/approve", headers=headers)
        assert approve.status == 401, name

    assert await db.fetchval("SELECT display_name FROM users WHERE email = 'mallory@example.com'") == "Sam Doe"
    assert await db.fetchval("SELECT status FROM users WHERE email = 'pending.doc@example.com'") == "pending"
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE action LIKE 'admin.%'") == 0


async def test_a_validly_signed_role_claim_does_not_outrank_the_account(client):
    """Even with our own key, the role comes from the account: a patient's token cannot act as admin."""
    tokens = await signed_in(client, "patient.only@example.com")
    resigned = es256({**claims_of(tokens["access_token"]), "role": "admin"})
    response = await client.get("/api/v1/admin/doctors", headers={"Authorization": f"Bearer {resigned}"})
    assert response.status == 403
    assert (await response.json())["code"] == "forbidden_role"


async def test_token_for_a_deleted_account_is_refused(client, db):
    tokens = await signed_in(client, "gone@example.com")
    await db.execute("DELETE FROM users")
    response = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert response.status == 401


async def test_disabled_account_is_refused_at_once(client, db):
    tokens = await signed_in(client, "disabled@example.com")
    await db.execute("UPDATE users SET status = 'disabled'")
    response = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert response.status == 401
    refresh = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refresh.status == 401


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer    ", "token abc"])
async def test_malformed_authorization_header_is_missing_token(client, header):
    response = await client.get("/api/v1/me", headers={"Authorization": header})
    assert response.status == 401
    assert (await response.json())["code"] == "missing_token"


async def test_verify_access_token_for_socket_connects(client):
    """The Socket.IO connect handler's entry point gives the same answers as the HTTP path."""
    from store.errors import DomainError
    from tests.test_auth_accounts import service_of

    tokens = await signed_in(client, "socket@example.com")
    principal = await service_of(client).verify_access_token(tokens["access_token"])
    assert str(principal.user_id) == tokens["user"]["id"] and principal.role == "patient" and principal.approved
    with pytest.raises(DomainError) as refused:
        await service_of(client).verify_access_token(tamper_payload(tokens["access_token"], role="admin"))
    assert refused.value.status == 401


async def test_key_file_is_private_and_shared_by_restarts(aiohttp_client, settings):
    """With no SKINDOC_JWT_KEY, the first start writes a 0600 key file that later starts reuse."""
    from web.app import create_app

    without_key = replace(settings, auth=replace(settings.auth, jwt_key=None))
    first = await aiohttp_client(create_app(without_key))
    tokens = await signed_in(first, "restart@example.com")
    key_file = settings.data_dir / "auth" / "jwt_signing_key.pem"
    assert key_file.stat().st_mode & 0o777 == 0o600
    second = await aiohttp_client(create_app(without_key))
    response = await second.get("/api/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert response.status == 200


def test_a_bad_configured_key_stops_start_up(tmp_path):
    from auth.config import AuthConfig
    from auth.tokens import load_signing_key

    for bad in ("not a key", OTHER_KEY.as_pem(private=False).decode(), '{"kty": "oct", "k": "c2VjcmV0"}'):
        with pytest.raises(SystemExit):
            load_signing_key(AuthConfig(jwt_key=bad), tmp_path)
    assert load_signing_key(AuthConfig(jwt_key=OTHER_KEY.as_pem(private=True).decode()), tmp_path).is_private
    assert not (tmp_path / "auth").exists()


def test_settings_from_the_environment():
    from auth.config import AuthConfig

    config = AuthConfig.from_env(
        {
            "SKINDOC_ACCESS_TOKEN_TTL_S": "300",
            "SKINDOC_OIDC_ISSUER": "https://idp.example/",
            "SKINDOC_OIDC_CLIENT_ID": "abc",
            "SKINDOC_LOGIN_MAX_FAILURES": "5",
        }
    )
    assert (config.access_token_ttl_s, config.oidc_issuer, config.oidc_client_id, config.login_max_failures) == (
        300,
        "https://idp.example",
        "abc",
        5,
    )
    assert AuthConfig.from_env({}) == AuthConfig()
    for bad in (
        {"SKINDOC_OIDC_ISSUER": "https://idp.example"},
        {"SKINDOC_ACCESS_TOKEN_TTL_S": "soon"},
        {"SKINDOC_ACCESS_TOKEN_TTL_S": "0"},
        {"SKINDOC_PASSWORD_MIN_LENGTH": "4"},
    ):
        with pytest.raises(SystemExit):
            AuthConfig.from_env(bad)
