"""The auth domain's operations: accounts, sign-in, tokens, OpenID Connect, doctor approval (the audit log's
reads: `audit_log`, auth/audit_reads.py).

Handlers (auth/routes.py) and the command line (auth/cli.py) only check input and
call these; each operation that changes something writes its audit row in the
same transaction.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from auth import oidc_accounts, refresh_tokens, store
from auth.audit import AuditContext
from auth.audit_reads import AuditLogReader
from auth.config import AuthConfig
from auth.oidc import OidcVerifier
from auth.passwords import Passwords, check_policy
from auth.principal import Principal
from auth.refresh_tokens import hash_refresh_token
from auth.throttle import LoginThrottle, RegistrationThrottle
from auth.tokens import AccessTokens, invalid_token
from store.connections import Stores
from store.errors import DomainError, conflict, not_found, unauthorized, unprocessable

log = logging.getLogger(__name__)

# Told, after the commit, which sessions (refresh families) were revoked and why, so that live
# connections on every node can be closed (chat registers one).
RevocationListener = Callable[[list[uuid.UUID], str], Awaitable[None]]


class AuthService:
    def __init__(self, stores: Stores, config: AuthConfig, tokens: AccessTokens) -> None:
        self._stores = stores
        self.config = config
        self.tokens = tokens
        self.passwords = Passwords(config)
        self.oidc = (
            OidcVerifier(config.oidc_issuer, config.oidc_client_id, config.oidc_cache_s)
            if config.oidc_issuer and config.oidc_client_id
            else None
        )
        self.revocation_listeners: list[RevocationListener] = []
        self.audit_log = AuditLogReader(stores)

    @property
    def _throttle(self) -> LoginThrottle:
        return LoginThrottle(self._stores.redis, self.config.login_max_failures, self.config.login_failure_window_s)

    async def _announce_revoked(self, session_ids: list[uuid.UUID], reason: str) -> None:
        if not session_ids:
            return
        for listener in self.revocation_listeners:
            try:
                await listener(session_ids, reason)
            except Exception:
                # The revocation is committed and HTTP refuses the tokens; the sockets' periodic
                # sweep closes what this push could not reach.
                log.warning("could not push a session revocation", exc_info=True)

    async def close(self) -> None:
        if self.oidc is not None:
            await self.oidc.close()

    # --- accounts ------------------------------------------------------------

    async def register(self, *, email: str, password: str, name: str, role: str, ctx: AuditContext) -> store.User:
        """A patient is active at once; a doctor waits, pending, for an admin's approval."""
        check_policy(password, self.config)
        await RegistrationThrottle(
            self._stores.redis, self.config.registration_max_per_address, self.config.registration_window_s
        ).reserve(ctx.client_ip)
        password_hash = await self.passwords.hash(password)
        status = "pending" if role == "doctor" else "active"
        async with self._stores.pool.acquire() as conn, conn.transaction():
            user = await store.insert_user(
                conn, email=email, display_name=name, role=role, status=status, password_hash=password_hash
            )
            await ctx.as_actor(None).record(conn, "auth.register", "user", user.id, {"role": role, "status": status})
        return user

    async def create_admin(self, *, email: str, name: str, password: str) -> store.User:
        check_policy(password, self.config)
        password_hash = await self.passwords.hash(password)
        async with self._stores.pool.acquire() as conn, conn.transaction():
            user = await store.insert_user(
                conn, email=email, display_name=name, role="admin", status="active", password_hash=password_hash
            )
            await AuditContext(None).record(conn, "admin.create", "user", str(user.id), {"via": "cli", "role": "admin"})
        return user

    async def approve_doctor(self, doctor_id: uuid.UUID, *, ctx: AuditContext) -> store.User:
        """Approved by `ctx.actor` (an admin), or from the command line (no actor)."""
        actor = ctx.actor
        async with self._stores.pool.acquire() as conn, conn.transaction():
            user = await store.approve_doctor(conn, doctor_id, actor.user_id if actor else None)
            if user is None:
                existing = await store.get_user_by_id(conn, doctor_id)
                if existing is None or existing.role != "doctor":
                    raise not_found("doctor_not_found", "No doctor has this id.")
                raise conflict("not_pending", f"This doctor is {existing.status}, not pending approval.")
            await ctx.record(
                conn,
                "admin.doctor_approve",
                "user",
                user.id,
                {"role": "doctor", "status": {"from": "pending", "to": "active"}, "via": "api" if actor else "cli"},
            )
        return user

    async def find_user(self, email_or_id: str) -> store.User | None:
        async with self._stores.pool.acquire() as conn:
            try:
                return await store.get_user_by_id(conn, uuid.UUID(email_or_id))
            except ValueError:
                return await store.get_user_by_email(conn, email_or_id.strip().lower())

    async def get_user(self, user_id: uuid.UUID) -> store.User:
        async with self._stores.pool.acquire() as conn:
            user = await store.get_user_by_id(conn, user_id)
        if user is None:
            raise invalid_token("The account behind this token no longer exists.")
        return user

    async def update_profile(
        self,
        principal: Principal,
        *,
        name: str | None,
        current_password: str | None,
        new_password: str | None,
        ctx: AuditContext,
    ) -> store.User:
        if new_password is not None:
            check_policy(new_password, self.config, field="new_password")
        async with self._stores.pool.acquire() as conn:
            user = await store.get_user_by_id(conn, principal.user_id)
        if user is None:
            raise invalid_token("The account behind this token no longer exists.")
        new_hash = await self._checked_new_password_hash(user, current_password, new_password, ctx)
        async with self._stores.pool.acquire() as conn, conn.transaction():
            if name is not None and name != user.display_name:
                await store.set_display_name(conn, user.id, name)
                await ctx.as_actor(principal).record(conn, "user.profile_update", "user", user.id, {"fields": ["name"]})
            revoked = []
            if new_hash is not None:
                await store.set_password_hash(conn, user.id, new_hash)
                # Other sessions were opened with the old password: sign them out.
                revoked = await store.revoke_all_refresh_families(
                    conn, user.id, "password_change", keep=principal.session_id
                )
                await ctx.as_actor(principal).record(conn, "user.password_change", "user", user.id)
            updated = await store.get_user_by_id(conn, user.id)
        assert updated is not None
        await self._announce_revoked(revoked, "password_change")
        return updated

    async def _checked_new_password_hash(
        self, user: store.User, current_password: str | None, new_password: str | None, ctx: AuditContext
    ) -> str | None:
        if new_password is None:
            return None
        if user.password_hash is None:
            raise conflict("no_password_set", "This account signs in through its identity provider only.")
        if current_password is None:
            raise unprocessable(
                "missing_field", "'current_password' is required to change the password.", field="current_password"
            )
        # Throttled like sign-in, so a stolen access token cannot be used to guess the password.
        throttle = self._throttle
        await throttle.reserve(user.email, ctx.client_ip)
        if not await self.passwords.verify(user.password_hash, current_password):
            raise DomainError(
                403, "wrong_password", "The current password is not correct.", {"field": "current_password"}
            )
        await throttle.succeeded(user.email, ctx.client_ip)
        return await self.passwords.hash(new_password)

    # --- sign-in and tokens --------------------------------------------------

    async def login(self, *, email: str, password: str, ctx: AuditContext) -> dict[str, Any]:
        throttle = self._throttle
        # Reserved before the slow check, so concurrent guesses cannot all get past the limit.
        await throttle.reserve(email, ctx.client_ip)
        async with self._stores.pool.acquire() as conn:
            user = await store.get_user_by_email(conn, email)
        if user is None:
            await self.passwords.spend_equal_time(password)
        valid = (
            user is not None and user.status != "disabled" and await self.passwords.verify(user.password_hash, password)
        )
        if not valid:
            async with self._stores.pool.acquire() as conn:
                await ctx.as_actor(None).record(
                    conn, "auth.login_failed", "user", user.id if user else None, {"email": email}
                )
            raise unauthorized("invalid_credentials", "The email or password is not correct.")
        await throttle.succeeded(email, ctx.client_ip)
        assert user is not None and user.password_hash is not None
        if self.passwords.needs_rehash(user.password_hash):
            new_hash = await self.passwords.hash(password)
            async with self._stores.pool.acquire() as conn:
                await store.set_password_hash(conn, user.id, new_hash)
        return await self._start_session(user, action="auth.login", ctx=ctx)

    async def _start_session(
        self, user: store.User, *, action: str, ctx: AuditContext, details: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        refresh_token = secrets.token_urlsafe(32)
        async with self._stores.pool.acquire() as conn, conn.transaction():
            family_id = await store.start_refresh_family(conn, user.id)
            await store.insert_refresh_token(
                conn, hash_refresh_token(refresh_token), family_id, self.config.refresh_token_ttl_s
            )
            response, principal = self._token_response(user, refresh_token, family_id)
            await ctx.as_actor(principal).record(
                conn, action, "user", user.id, {"refresh_family": str(family_id), **(details or {})}
            )
        return response

    def _token_response(
        self, user: store.User, refresh_token: str, session_id: uuid.UUID
    ) -> tuple[dict[str, Any], Principal]:
        access_token = self.tokens.issue(user.id, user.role, session_id)
        claims = self.tokens.verify(access_token)
        principal = Principal(
            user.id,
            user.role,
            user.status == "active",
            claims.token_id,
            datetime.fromtimestamp(claims.expires_at, UTC),
            session_id,
        )
        response = {
            "access_token": access_token,
            "refresh_token": refresh_token,
            "token_type": "Bearer",
            "expires_in": self.tokens.ttl_s,
            "user": user.as_json(),
        }
        return response, principal

    async def refresh(self, refresh_token: str, *, ctx: AuditContext) -> dict[str, Any]:
        """Rotates the token; presenting an already rotated one revokes its whole family, unless it was
        rotated within the grace window and its successor is unused: then it gets that same successor."""
        token_hash = hash_refresh_token(refresh_token)
        successor = refresh_tokens.successor(self.tokens.derived_secret(b"refresh-rotation"), refresh_token)
        async with self._stores.pool.acquire() as conn, conn.transaction():
            row = await store.lock_refresh_token(conn, token_hash)
            user = await store.get_user_by_id(conn, row.user_id) if row is not None else None
            failure = refresh_tokens.refresh_failure(row, user)
            if failure is None:
                await store.mark_refresh_token_rotated(conn, token_hash)
                await store.insert_refresh_token(
                    conn, hash_refresh_token(successor), row.family_id, self.config.refresh_token_ttl_s
                )
            elif failure.code == "refresh_token_reused":
                if await refresh_tokens.within_grace(conn, row, user, successor, self.config.refresh_grace_s):
                    failure = None
                else:
                    await self._revoke_stolen_family(conn, row, ctx)
        # Raised after the commit, so a detected reuse stays revoked.
        if failure is not None:
            if failure.code == "refresh_token_reused":
                await self._announce_revoked([row.family_id], "reuse_detected")
            raise failure
        response, _ = self._token_response(user, successor, row.family_id)
        return response

    @staticmethod
    async def _revoke_stolen_family(conn, row: store.RefreshTokenRow, ctx: AuditContext) -> None:
        # Someone holds a copy of a spent token: either party may be the thief, so end the whole session.
        log.warning(
            "refresh token reused; session revoked", extra={"user_id": str(row.user_id), "client_ip": ctx.client_ip}
        )
        await store.revoke_refresh_family(conn, row.family_id, "reuse_detected")
        await ctx.as_actor(None).record(
            conn, "auth.refresh_reuse_detected", "user", row.user_id, {"refresh_family": str(row.family_id)}
        )

    async def logout(self, principal: Principal, refresh_token: str, *, ctx: AuditContext) -> None:
        """Revokes the refresh family: its access tokens are refused from now on and its sockets closed."""
        async with self._stores.pool.acquire() as conn, conn.transaction():
            row = await store.lock_refresh_token(conn, hash_refresh_token(refresh_token))
            if row is None or row.user_id != principal.user_id:
                raise unauthorized("invalid_refresh_token", "This refresh token does not belong to this session.")
            await store.revoke_refresh_family(conn, row.family_id, "logout")
            await ctx.as_actor(principal).record(
                conn, "auth.logout", "user", principal.user_id, {"refresh_family": str(row.family_id)}
            )
        await self._announce_revoked([row.family_id], "logout")

    async def verify_access_token(self, token: str) -> Principal:
        """The caller behind a Bearer token; 401 when it is invalid, expired, signed out or its account is gone.

        One query: the account's current role and status win over the token's (approval and disabling
        take effect at once), and a revoked sign-in refuses its tokens at once, on every node. It reads
        PostgreSQL, the record of revocations, so a Redis outage cannot bring a revoked token back."""
        claims = self.tokens.verify(token)
        async with self._stores.pool.acquire() as conn:
            holder = await store.get_token_holder(conn, claims.user_id, claims.session_id)
        if holder is None or holder.status == "disabled":
            raise invalid_token("The account behind this token cannot be used.")
        if holder.session_revoked:
            raise invalid_token("This access token has been signed out.")
        return Principal(
            claims.user_id,
            holder.role,
            holder.status == "active",
            claims.token_id,
            datetime.fromtimestamp(claims.expires_at, UTC),
            claims.session_id,
        )

    async def revoked_sessions(
        self, sessions: list[tuple[uuid.UUID, uuid.UUID | None]]
    ) -> list[tuple[uuid.UUID, uuid.UUID | None]]:
        """Of these (user, session) pairs, those whose tokens verify_access_token would now refuse."""
        if not sessions:
            return []
        async with self._stores.pool.acquire() as conn:
            return await store.revoked_sessions(conn, sessions)

    # --- OpenID Connect ------------------------------------------------------

    async def oidc_sign_in(self, id_token: str, *, nonce: str | None, ctx: AuditContext) -> dict[str, Any]:
        """Signs in the linked account, links one with the verified email, or creates a patient."""
        if self.oidc is None:
            raise not_found("oidc_not_configured", "Sign-in with an identity provider is not set up here.")
        identity = await self.oidc.verify(id_token, nonce)
        async with self._stores.pool.acquire() as conn, conn.transaction():
            user, outcome, revoked = await oidc_accounts.account_for(conn, identity)
        await self._announce_revoked(revoked, "oidc_link")
        if user.status == "disabled":
            raise unauthorized("account_disabled", "This account is disabled.")
        return await self._start_session(
            user, action="auth.oidc_login", ctx=ctx, details={"issuer": identity.issuer, "account": outcome}
        )

    # --- admin views -----------------------------------------------------------

    async def list_doctors(self, *, status: str | None, limit: int, offset: int) -> list[store.User]:
        async with self._stores.pool.acquire() as conn:
            return await store.list_doctors(conn, status=status, limit=limit, offset=offset)
