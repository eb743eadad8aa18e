"""The auth domain's settings, read from SKINDOC_* environment variables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from store.env import env_int


@dataclass(frozen=True)
class AuthConfig:
    # A private key (PEM, or a JWK as JSON) for signing access tokens; unset means a
    # key file created in the data folder on first start.
    jwt_key: str | None = None
    jwt_issuer: str = "skindoc"
    jwt_audience: str = "skindoc-api"
    access_token_ttl_s: int = 15 * 60
    refresh_token_ttl_s: int = 30 * 24 * 3600
    password_min_length: int = 12
    # argon2id cost; changing these makes the next successful sign-in rehash the password.
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 64 * 1024
    argon2_parallelism: int = 4
    login_max_failures: int = 10
    login_failure_window_s: int = 15 * 60
    # Each registration costs a password hash: a cap per address and window.
    registration_max_per_address: int = 20
    registration_window_s: int = 3600
    # A refresh token presented again this soon after its rotation gets the same successor instead of
    # counting as theft (two tabs refreshing at once); later reuse still revokes the session.
    refresh_grace_s: int = 10
    # The key of the audit log's checkpoints (hex or base64, 32 bytes or more); unset means a key file
    # created in the data folder on first start, like the signing key.
    audit_key: str | None = None
    audit_checkpoint_interval_s: int = 10
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_cache_s: int = 3600

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AuthConfig:
        if bool(env.get("SKINDOC_OIDC_ISSUER")) != bool(env.get("SKINDOC_OIDC_CLIENT_ID")):
            raise SystemExit(
                "Set both SKINDOC_OIDC_ISSUER and SKINDOC_OIDC_CLIENT_ID for OpenID Connect sign-in, or neither."
            )
        return cls(
            jwt_key=env.get("SKINDOC_JWT_KEY") or None,
            jwt_issuer=env.get("SKINDOC_JWT_ISSUER") or cls.jwt_issuer,
            jwt_audience=env.get("SKINDOC_JWT_AUDIENCE") or cls.jwt_audience,
            access_token_ttl_s=env_int(env, "SKINDOC_ACCESS_TOKEN_TTL_S", cls.access_token_ttl_s, minimum=1),
            refresh_token_ttl_s=env_int(env, "SKINDOC_REFRESH_TOKEN_TTL_S", cls.refresh_token_ttl_s, minimum=1),
            password_min_length=env_int(env, "SKINDOC_PASSWORD_MIN_LENGTH", cls.password_min_length, minimum=8),
            argon2_time_cost=env_int(env, "SKINDOC_ARGON2_TIME_COST", cls.argon2_time_cost, minimum=1),
            argon2_memory_kib=env_int(env, "SKINDOC_ARGON2_MEMORY_KIB", cls.argon2_memory_kib, minimum=8),
            argon2_parallelism=env_int(env, "SKINDOC_ARGON2_PARALLELISM", cls.argon2_parallelism, minimum=1),
            login_max_failures=env_int(env, "SKINDOC_LOGIN_MAX_FAILURES", cls.login_max_failures, minimum=1),
            login_failure_window_s=env_int(
                env, "SKINDOC_LOGIN_FAILURE_WINDOW_S", cls.login_failure_window_s, minimum=1
            ),
            registration_max_per_address=env_int(
                env, "SKINDOC_REGISTRATION_MAX_PER_ADDRESS", cls.registration_max_per_address, minimum=1
            ),
            registration_window_s=env_int(env, "SKINDOC_REGISTRATION_WINDOW_S", cls.registration_window_s, minimum=1),
            refresh_grace_s=env_int(env, "SKINDOC_REFRESH_GRACE_S", cls.refresh_grace_s, minimum=0),
            audit_key=env.get("SKINDOC_AUDIT_KEY") or None,
            audit_checkpoint_interval_s=env_int(
                env, "SKINDOC_AUDIT_CHECKPOINT_INTERVAL_S", cls.audit_checkpoint_interval_s, minimum=1
            ),
            oidc_issuer=(env.get("SKINDOC_OIDC_ISSUER") or "").rstrip("/") or None,
            oidc_client_id=env.get("SKINDOC_OIDC_CLIENT_ID") or None,
            oidc_cache_s=env_int(env, "SKINDOC_OIDC_CACHE_S", cls.oidc_cache_s, minimum=1),
        )
