"""OpenID Connect sign-in against a local issuer this test runs itself (its own RSA keys, discovery and JWKS)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field, replace

import pytest
from aiohttp import web
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from tests.test_auth_accounts import PASSWORD, bearer, login, service_of, signed_in
from web.app import create_app

CLIENT_ID = "skindoc-test-client"
NONCE = "nonce-from-the-auth-request"


@dataclass
class LocalIssuer:
    """A minimal identity provider: signs ID tokens and publishes its public keys."""

    url: str = ""
    keys: list[RSAKey] = field(default_factory=lambda: [RSAKey.generate_key(2048, parameters={"kid": "key-1"})])
    jwks_fetches: int = 0

    def id_token(self, *, key: RSAKey | None = None, kid: str | None = None, **overrides) -> str:
        key = key or self.keys[-1]
        now = int(time.time())
        claims = {
            "iss": self.url,
            "aud": CLIENT_ID,
            "sub": "google-user-1",
            "iat": now,
            "exp": now + 300,
            "email": "Olivia@Example.com",
            "email_verified": True,
            "name": "Olivia Idp",
            "nonce": NONCE,
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode({"alg": "RS256", "kid": kid or key.kid}, claims, key)

    def app(self) -> web.Application:
        async def discovery(request: web.Request) -> web.Response:
            return web.json_response(
                {"issuer": self.url, "jwks_uri": f"{self.url}/jwks", "id_token_signing_alg_values_supported": ["RS256"]}
            )

        async def jwks(request: web.Request) -> web.Response:
            self.jwks_fetches += 1
            return web.json_response(KeySet(self.keys).as_dict(private=False))

        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", discovery)
        app.router.add_get("/jwks", jwks)
        return app


@pytest.fixture
async def issuer(aiohttp_server) -> LocalIssuer:
    issuer = LocalIssuer()
    server = await aiohttp_server(issuer.app(), host="127.0.0.1")
    issuer.url = str(server.make_url("")).rstrip("/")
    return issuer


@pytest.fixture
async def client(aiohttp_client, settings, issuer):
    auth = replace(settings.auth, oidc_issuer=issuer.url, oidc_client_id=CLIENT_ID)
    return await aiohttp_client(create_app(replace(settings, auth=auth)))


async def sign_in(client, id_token: str, **extra):
    return await client.post("/api/v1/auth/oidc", json={"id_token": id_token, **extra})


async def test_first_sign_in_creates_a_patient_then_signs_the_same_one_in(client, issuer, db):
    response = await sign_in(client, issuer.id_token())
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["user"]["email"] == "olivia@example.com"
    assert body["user"]["role"] == "patient" and body["user"]["name"] == "Olivia Idp"
    assert (await client.get("/api/v1/me", headers=bearer(body))).status == 200
    assert await db.fetchval("SELECT password_hash FROM users") is None

    again = await sign_in(client, issuer.id_token())
    assert again.status == 200
    assert (await again.json())["user"]["id"] == body["user"]["id"]
    assert await db.fetchval("SELECT count(*) FROM users") == 1
    outcomes = await db.fetch(
        "SELECT details->>'account' AS outcome FROM audit_log WHERE action = 'auth.oidc_login' ORDER BY id"
    )
    assert [r["outcome"] for r in outcomes] == ["created", "existing"]
    assert issuer.jwks_fetches == 1  # cached


async def test_verified_email_links_to_an_existing_account_and_drops_its_password(client, issuer, db):
    """Registration never proved the address; the provider does. A password someone else may have set
    (account pre-hijacking) stops working, and so do that password's sessions."""
    squatter = await signed_in(client, "olivia@example.com")
    response = await sign_in(client, issuer.id_token())
    assert response.status == 200
    assert (await response.json())["user"]["id"] == squatter["user"]["id"]
    assert await db.fetchval("SELECT count(*) FROM oidc_identities") == 1
    assert await db.fetchval("SELECT password_hash FROM users") is None
    refused = await client.post("/api/v1/auth/login", json={"email": "olivia@example.com", "password": PASSWORD})
    assert refused.status == 401
    stale = await client.post("/api/v1/auth/refresh", json={"refresh_token": squatter["refresh_token"]})
    assert stale.status == 401
    outcome = await db.fetchval("SELECT details->>'account' FROM audit_log WHERE action = 'auth.oidc_login'")
    assert outcome == "linked_password_cleared"


async def test_an_admin_keeps_their_password_when_linked(client, issuer, db):
    await signed_in(client, "olivia@example.com", role="admin")
    response = await sign_in(client, issuer.id_token())
    assert response.status == 200
    assert (await response.json())["user"]["role"] == "admin"
    await login(client, "olivia@example.com", PASSWORD)


@pytest.mark.parametrize(
    "overrides, what",
    [
        ({"aud": "someone-else"}, "wrong audience"),
        ({"iss": "https://accounts.evil.example"}, "wrong issuer"),
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, "expired"),
        ({"email_verified": False}, "unverified email"),
        ({"email_verified": None}, "email_verified missing"),
        ({"email_verified": "true"}, "email_verified as a string"),
        ({"email": None}, "no email"),
        ({"sub": None}, "no subject"),
        ({"nonce": "other-nonce"}, "nonce mismatch"),
        ({"nonce": None}, "nonce missing"),
    ],
)
async def test_unacceptable_claims_are_refused_and_nothing_is_written(client, issuer, db, overrides, what):
    # The same token without the override is accepted, so each refusal is for the named reason.
    assert (
        await sign_in(client, issuer.id_token(sub="control", email="control@example.com"), nonce=NONCE)
    ).status == 200
    response = await sign_in(client, issuer.id_token(**overrides), nonce=NONCE)
    assert response.status == 401, what
    assert response.content_type == "application/problem+json"
    assert (await response.json())["code"] == "invalid_id_token", what
    assert await db.fetchval("SELECT array_agg(email) FROM users") == ["control@example.com"]


async def test_bad_signature_is_refused(client, issuer, db):
    impostor = RSAKey.generate_key(2048)
    response = await sign_in(client, issuer.id_token(key=impostor, kid="key-1"))
    assert response.status == 401
    assert await db.fetchval("SELECT count(*) FROM users") == 0


async def test_alg_none_and_hmac_with_the_public_key_are_refused(client, issuer, db):
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    claims = jwt.decode(issuer.id_token(), issuer.keys[0]).claims
    payload = b64(json.dumps(claims).encode())
    none_token = f"{b64(json.dumps({'alg': 'none', 'kid': 'key-1'}).encode())}.{payload}."
    hs_input = f"{b64(json.dumps({'alg': 'HS256', 'kid': 'key-1'}).encode())}.{payload}"
    secret = issuer.keys[0].as_pem(private=False)
    hs_token = f"{hs_input}.{b64(hmac.new(secret, hs_input.encode(), hashlib.sha256).digest())}"
    for token in (none_token, hs_token, "garbage"):
        response = await sign_in(client, token)
        assert response.status == 401
    assert await db.fetchval("SELECT count(*) FROM users") == 0


async def test_rotated_issuer_key_is_fetched_on_unknown_kid(client, issuer):
    assert (await sign_in(client, issuer.id_token())).status == 200
    service_of(client).oidc.min_refetch_s = 0
    issuer.keys.append(RSAKey.generate_key(2048, parameters={"kid": "key-2"}))
    response = await sign_in(client, issuer.id_token(sub="google-user-2", email="second@example.com"))
    assert response.status == 200
    assert issuer.jwks_fetches == 2


async def test_unknown_kid_does_not_refetch_within_the_throttle(client, issuer):
    assert (await sign_in(client, issuer.id_token())).status == 200
    stranger = RSAKey.generate_key(2048, parameters={"kid": "never-published"})
    for _ in range(3):
        assert (await sign_in(client, issuer.id_token(key=stranger))).status == 401
    assert issuer.jwks_fetches == 1


async def test_unreachable_issuer_is_503(aiohttp_client, settings):
    auth = replace(settings.auth, oidc_issuer="http://127.0.0.1:9", oidc_client_id=CLIENT_ID)
    client = await aiohttp_client(create_app(replace(settings, auth=auth)))
    response = await sign_in(client, LocalIssuer(url="http://127.0.0.1:9").id_token())
    assert response.status == 503
    assert (await response.json())["code"] == "oidc_unavailable"


async def test_not_configured_is_404(aiohttp_client, settings):
    client = await aiohttp_client(create_app(settings))
    response = await sign_in(client, "a.b.c")
    assert response.status == 404
    assert (await response.json())["code"] == "oidc_not_configured"
