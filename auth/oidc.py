"""OpenID Connect ID-token verification against the issuer's published keys.

The discovery document and JWKS are fetched with aiohttp and cached; a token
signed with a key id we have not seen makes us refetch the JWKS once (issuers
rotate keys), at most every MIN_REFETCH_S so forged kids cannot hammer the
issuer. Claims are checked with authlib's OpenID Connect rules (iss, aud, exp,
iat, azp, nonce) plus our own: a verified email is required.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from authlib.oidc.core import IDToken
from joserfc import jws
from joserfc.errors import ExpiredTokenError, JoseError
from joserfc.jwk import KeySet

from store.errors import DomainError, unauthorized

# Asymmetric algorithms only: never "none" or an HMAC keyed with something public.
ALLOWED_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
MIN_REFETCH_S = 30
LEEWAY_S = 60
FETCH_TIMEOUT_S = 5


@dataclass(frozen=True)
class VerifiedIdentity:
    issuer: str
    subject: str
    email: str
    name: str | None


def oidc_failure(detail: str) -> DomainError:
    return unauthorized("invalid_id_token", detail)


class OidcVerifier:
    def __init__(self, issuer: str, client_id: str, cache_s: int) -> None:
        self.issuer = issuer
        self._client_id = client_id
        self._cache_s = cache_s
        self.min_refetch_s = MIN_REFETCH_S
        self._session: aiohttp.ClientSession | None = None
        self._jwks_uri: str | None = None
        self._algorithms: list[str] = list(ALLOWED_ALGORITHMS)
        self._keys: KeySet | None = None
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def verify(self, id_token: str, nonce: str | None = None) -> VerifiedIdentity:
        header = _unverified_header(id_token)
        if header.get("alg") not in self._algorithms:
            raise oidc_failure("The ID token's signing algorithm is not accepted.")
        keys = await self._keys_for(header.get("kid"))
        try:
            token = jws.deserialize_compact(id_token, keys, algorithms=self._algorithms)
        except JoseError:
            raise oidc_failure("The ID token's signature does not verify.") from None
        claims = _json_claims(token.payload)
        _check_claims(claims, token.protected, self.issuer, self._client_id, nonce)
        if claims.get("email_verified") is not True or not isinstance(claims.get("email"), str):
            raise oidc_failure("The identity provider has not verified this account's email address.")
        name = claims.get("name") if isinstance(claims.get("name"), str) else None
        return VerifiedIdentity(self.issuer, str(claims["sub"]), claims["email"].strip().lower(), name)

    async def _keys_for(self, kid: str | None) -> KeySet:
        async with self._lock:
            stale = time.monotonic() - self._fetched_at > self._cache_s
            unknown = kid is not None and self._keys is not None and not _has_kid(self._keys, kid)
            may_refetch = time.monotonic() - self._fetched_at >= self.min_refetch_s
            if self._keys is None or stale or (unknown and may_refetch):
                await self._fetch_keys()
            assert self._keys is not None
            if kid is not None and not _has_kid(self._keys, kid):
                raise oidc_failure("The ID token is signed with a key the issuer does not publish.")
            return self._keys

    async def _fetch_keys(self) -> None:
        if self._jwks_uri is None:
            discovery = await self._get_json(f"{self.issuer}/.well-known/openid-configuration")
            if discovery.get("issuer") != self.issuer or not isinstance(discovery.get("jwks_uri"), str):
                raise DomainError(503, "oidc_unavailable", "The identity provider's discovery document is invalid.")
            offered = discovery.get("id_token_signing_alg_values_supported") or list(ALLOWED_ALGORITHMS)
            self._algorithms = [alg for alg in ALLOWED_ALGORITHMS if alg in offered]
            self._jwks_uri = discovery["jwks_uri"]
        try:
            self._keys = KeySet.import_key_set(await self._get_json(self._jwks_uri))
        except (JoseError, ValueError, TypeError, KeyError):
            raise DomainError(503, "oidc_unavailable", "The identity provider's key set is invalid.") from None
        self._fetched_at = time.monotonic()

    async def _get_json(self, url: str) -> dict[str, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S))
        try:
            async with self._session.get(url) as response:
                response.raise_for_status()
                body = await response.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError):
            raise DomainError(503, "oidc_unavailable", "The identity provider cannot be reached; try again.") from None
        if not isinstance(body, dict):
            raise DomainError(503, "oidc_unavailable", "The identity provider answered with something unexpected.")
        return body


def _unverified_header(id_token: str) -> dict[str, Any]:
    try:
        return jws.extract_compact(id_token.encode()).protected
    except (JoseError, ValueError, TypeError, RecursionError):  # RecursionError: a header nested too deep
        raise oidc_failure("The ID token is not a compact JWS.") from None


def _json_claims(payload: bytes) -> dict[str, Any]:
    try:
        claims = json.loads(payload)
    except (ValueError, RecursionError):
        raise oidc_failure("The ID token's payload is not JSON.") from None
    if not isinstance(claims, dict):
        raise oidc_failure("The ID token's payload is not a JSON object.")
    return claims


def _check_claims(
    claims: dict[str, Any], header: dict[str, Any], issuer: str, client_id: str, nonce: str | None
) -> None:
    id_token = IDToken(
        claims,
        header,
        options={"iss": {"essential": True, "value": issuer}, "aud": {"essential": True, "value": client_id}},
        params={"client_id": client_id, "nonce": nonce},
    )
    try:
        id_token.validate(now=int(time.time()), leeway=LEEWAY_S)
    except ExpiredTokenError:
        raise oidc_failure("The ID token has expired.") from None
    except JoseError as exc:
        raise oidc_failure(f"The ID token's claims are not acceptable ({exc.error}).") from None


def _has_kid(keys: KeySet, kid: str) -> bool:
    return any(key.kid == kid for key in keys.keys)
