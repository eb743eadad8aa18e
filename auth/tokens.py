"""Access tokens: ES256 JWTs signed with joserfc, and the signing key they need.

The key comes from SKINDOC_JWT_KEY (PEM or JWK JSON) or from a key file created
with mode 0600 in the data folder on first start, so every node sharing the data
folder (or the variable) signs with the same key. Verification accepts ES256
only: a token naming any other algorithm ("none", HS256 with the public key as
the secret) is refused before its signature is looked at.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from joserfc import jwt
from joserfc.errors import ExpiredTokenError, JoseError
from joserfc.jwk import ECKey

from auth.config import AuthConfig
from auth.keyfiles import create_or_read
from store.errors import DomainError, unauthorized

ALGORITHM = "ES256"
KEY_FILE_NAME = "jwt_signing_key.pem"


def load_signing_key(config: AuthConfig, data_dir: Path) -> ECKey:
    if config.jwt_key:
        return _import_private_key(config.jwt_key)
    return _load_or_create_key_file(data_dir / "auth" / KEY_FILE_NAME)


def _import_private_key(text: str) -> ECKey:
    try:
        value = json.loads(text) if text.lstrip().startswith("{") else text
        key = ECKey.import_key(value)
    except (ValueError, JoseError) as exc:
        raise SystemExit(f"SKINDOC_JWT_KEY is not a P-256 private key (PEM or JWK): {exc}") from None
    if not key.is_private or key.curve_name != "P-256":
        raise SystemExit("SKINDOC_JWT_KEY must be a P-256 private key.")
    return key


def _load_or_create_key_file(path: Path) -> ECKey:
    pem = create_or_read(
        path, lambda: ECKey.generate_key("P-256").as_pem(private=True), lambda data: data.strip().endswith(b"-----")
    )
    return ECKey.import_key(pem)


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    role: str
    token_id: str
    expires_at: int
    # The sign-in (refresh family) the token was issued for: revoking it refuses the token at once.
    session_id: uuid.UUID | None = None


class AccessTokens:
    def __init__(self, key: ECKey, config: AuthConfig) -> None:
        self._key = key
        self._config = config
        self._claims_registry = jwt.JWTClaimsRegistry(
            leeway=0,
            iss={"essential": True, "value": config.jwt_issuer},
            aud={"essential": True, "value": config.jwt_audience},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
            jti={"essential": True},
            role={"essential": True, "values": ["patient", "doctor", "admin"]},
        )

    @property
    def ttl_s(self) -> int:
        return self._config.access_token_ttl_s

    def derived_secret(self, purpose: bytes) -> bytes:
        """A secret for `purpose` derived from the signing key: every node that signs alike derives alike."""
        private = self._key.as_bytes(private=True)
        return hmac.new(private, b"skindoc:" + purpose, hashlib.sha256).digest()

    def issue(self, user_id: uuid.UUID, role: str, session_id: uuid.UUID | None = None) -> str:
        now = int(time.time())
        claims = {
            "iss": self._config.jwt_issuer,
            "aud": self._config.jwt_audience,
            "sub": str(user_id),
            "role": role,
            "iat": now,
            "exp": now + self._config.access_token_ttl_s,
            "jti": secrets.token_urlsafe(16),
        }
        if session_id is not None:
            claims["sid"] = str(session_id)
        return jwt.encode(
            {"alg": ALGORITHM, "typ": "JWT", "kid": self._key.thumbprint()}, claims, self._key, algorithms=[ALGORITHM]
        )

    def verify(self, token: str) -> AccessClaims:
        """The token's claims, or a 401 DomainError saying why it is refused."""
        try:
            decoded = jwt.decode(token, self._key, algorithms=[ALGORITHM])
            self._claims_registry.validate(decoded.claims)
            claims = decoded.claims
            session_id = uuid.UUID(str(claims["sid"])) if "sid" in claims else None
            return AccessClaims(
                uuid.UUID(claims["sub"]), claims["role"], str(claims["jti"]), int(claims["exp"]), session_id
            )
        except ExpiredTokenError:
            raise unauthorized("token_expired", "The access token has expired; refresh it.") from None
        except (JoseError, ValueError, TypeError, KeyError):
            raise invalid_token() from None


def invalid_token(detail: str = "The access token is not valid.") -> DomainError:
    error = unauthorized("invalid_token", detail)
    error.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    return error
