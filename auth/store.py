"""The auth domain's SQL: users, OpenID Connect links, refresh-token families and the audit log.

Each transaction is one named function over a connection; callers own the
transaction boundaries (`async with conn.transaction()`).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from store.errors import conflict

USER_COLUMNS = "id, email, display_name, role, status, password_hash, created_at"


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    email: str
    display_name: str
    role: str
    status: str
    password_hash: str | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> User:
        return cls(**dict(row))

    def as_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "email": self.email,
            "name": self.display_name,
            "role": self.role,
            "status": self.status,
        }


def _user_or_none(row: asyncpg.Record | None) -> User | None:
    return User.from_row(row) if row is not None else None


# --- users -----------------------------------------------------------------


async def insert_user(
    conn: asyncpg.Connection, *, email: str, display_name: str, role: str, status: str, password_hash: str | None
) -> User:
    try:
        row = await conn.fetchrow(
            f"""INSERT INTO users (email, display_name, role, status, password_hash)
                VALUES ($1, $2, $3, $4, $5) RETURNING {USER_COLUMNS}""",
            email,
            display_name,
            role,
            status,
            password_hash,
        )
    except asyncpg.UniqueViolationError:
        raise conflict("email_taken", "An account with this email already exists.", field="email") from None
    return User.from_row(row)


async def get_user_by_id(conn: asyncpg.Connection, user_id: uuid.UUID, *, for_update: bool = False) -> User | None:
    lock = " FOR UPDATE" if for_update else ""
    return _user_or_none(await conn.fetchrow(f"SELECT {USER_COLUMNS} FROM users WHERE id = $1{lock}", user_id))


async def get_user_by_email(conn: asyncpg.Connection, email: str) -> User | None:
    return _user_or_none(await conn.fetchrow(f"SELECT {USER_COLUMNS} FROM users WHERE email = $1", email))


async def get_role_and_status(conn: asyncpg.Connection, user_id: uuid.UUID) -> tuple[str, str] | None:
    row = await conn.fetchrow("SELECT role, status FROM users WHERE id = $1", user_id)
    return (row["role"], row["status"]) if row is not None else None


@dataclass(frozen=True)
class TokenHolder:
    role: str
    status: str
    session_revoked: bool


async def get_token_holder(
    conn: asyncpg.Connection, user_id: uuid.UUID, session_id: uuid.UUID | None
) -> TokenHolder | None:
    """The account's role and status now, and whether the token's sign-in has been revoked, in one query."""
    row = await conn.fetchrow(
        """SELECT u.role, u.status, $2::uuid IS NOT NULL AND (f.id IS NULL OR f.revoked_at IS NOT NULL)
                  AS session_revoked
           FROM users u LEFT JOIN refresh_families f ON f.id = $2 AND f.user_id = u.id
           WHERE u.id = $1""",
        user_id,
        session_id,
    )
    return TokenHolder(**dict(row)) if row is not None else None


async def revoked_sessions(
    conn: asyncpg.Connection, sessions: list[tuple[uuid.UUID, uuid.UUID | None]]
) -> list[tuple[uuid.UUID, uuid.UUID | None]]:
    """Of these (user, session) pairs, those that may no longer be used: session revoked, account disabled or gone."""
    rows = await conn.fetch(
        """SELECT s.user_id, s.session_id
           FROM unnest($1::uuid[], $2::uuid[]) AS s(user_id, session_id)
           LEFT JOIN users u ON u.id = s.user_id
           LEFT JOIN refresh_families f ON f.id = s.session_id AND f.user_id = s.user_id
           WHERE u.id IS NULL OR u.status = 'disabled'
              OR (s.session_id IS NOT NULL AND (f.id IS NULL OR f.revoked_at IS NOT NULL))""",
        [user for user, _ in sessions],
        [session for _, session in sessions],
    )
    return [(row["user_id"], row["session_id"]) for row in rows]


async def set_password_hash(conn: asyncpg.Connection, user_id: uuid.UUID, password_hash: str) -> None:
    await conn.execute("UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1", user_id, password_hash)


async def clear_password(conn: asyncpg.Connection, user_id: uuid.UUID) -> None:
    await conn.execute("UPDATE users SET password_hash = NULL, updated_at = now() WHERE id = $1", user_id)


async def set_display_name(conn: asyncpg.Connection, user_id: uuid.UUID, display_name: str) -> None:
    await conn.execute("UPDATE users SET display_name = $2, updated_at = now() WHERE id = $1", user_id, display_name)


async def approve_doctor(conn: asyncpg.Connection, doctor_id: uuid.UUID, approver_id: uuid.UUID | None) -> User | None:
    """The approved doctor, or None when no pending doctor has this id."""
    row = await conn.fetchrow(
        f"""UPDATE users SET status = 'active', approved_at = now(), approved_by = $2, updated_at = now()
            WHERE id = $1 AND role = 'doctor' AND status = 'pending' RETURNING {USER_COLUMNS}""",
        doctor_id,
        approver_id,
    )
    return _user_or_none(row)


async def list_doctors(conn: asyncpg.Connection, *, status: str | None, limit: int, offset: int) -> list[User]:
    rows = await conn.fetch(
        f"""SELECT {USER_COLUMNS} FROM users
            WHERE role = 'doctor' AND ($1::text IS NULL OR status = $1)
            ORDER BY created_at, id LIMIT $2 OFFSET $3""",
        status,
        limit,
        offset,
    )
    return [User.from_row(row) for row in rows]


# --- OpenID Connect links --------------------------------------------------


async def get_user_by_oidc_identity(conn: asyncpg.Connection, issuer: str, subject: str) -> User | None:
    columns = ", ".join(f"u.{c.strip()}" for c in USER_COLUMNS.split(","))
    return _user_or_none(
        await conn.fetchrow(
            f"""SELECT {columns} FROM oidc_identities i JOIN users u ON u.id = i.user_id
            WHERE i.issuer = $1 AND i.subject = $2""",
            issuer,
            subject,
        )
    )


async def link_oidc_identity(conn: asyncpg.Connection, issuer: str, subject: str, user_id: uuid.UUID) -> None:
    await conn.execute(
        "INSERT INTO oidc_identities (issuer, subject, user_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        issuer,
        subject,
        user_id,
    )


# --- refresh tokens ----------------------------------------------------------


@dataclass(frozen=True)
class RefreshTokenRow:
    family_id: uuid.UUID
    user_id: uuid.UUID
    expires_at: datetime
    rotated_at: datetime | None
    family_revoked_at: datetime | None


async def start_refresh_family(conn: asyncpg.Connection, user_id: uuid.UUID) -> uuid.UUID:
    return await conn.fetchval("INSERT INTO refresh_families (user_id) VALUES ($1) RETURNING id", user_id)


async def insert_refresh_token(conn: asyncpg.Connection, token_hash: bytes, family_id: uuid.UUID, ttl_s: int) -> None:
    await conn.execute(
        """INSERT INTO refresh_tokens (token_hash, family_id, expires_at)
           VALUES ($1, $2, now() + make_interval(secs => $3))""",
        token_hash,
        family_id,
        ttl_s,
    )


async def lock_refresh_token(conn: asyncpg.Connection, token_hash: bytes) -> RefreshTokenRow | None:
    """The token and its family, locked so two concurrent uses of one token are serialised."""
    row = await conn.fetchrow(
        """SELECT t.family_id, f.user_id, t.expires_at, t.rotated_at, f.revoked_at AS family_revoked_at
           FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id
           WHERE t.token_hash = $1 FOR UPDATE OF t, f""",
        token_hash,
    )
    return RefreshTokenRow(**dict(row)) if row is not None else None


async def mark_refresh_token_rotated(conn: asyncpg.Connection, token_hash: bytes) -> None:
    await conn.execute("UPDATE refresh_tokens SET rotated_at = now() WHERE token_hash = $1", token_hash)


async def revoke_refresh_family(conn: asyncpg.Connection, family_id: uuid.UUID, reason: str) -> None:
    await conn.execute(
        "UPDATE refresh_families SET revoked_at = now(), revoked_reason = $2 WHERE id = $1 AND revoked_at IS NULL",
        family_id,
        reason,
    )


async def revoke_all_refresh_families(
    conn: asyncpg.Connection, user_id: uuid.UUID, reason: str, *, keep: uuid.UUID | None = None
) -> list[uuid.UUID]:
    """Revokes every live session of the user but `keep`; returns the sessions revoked now."""
    rows = await conn.fetch(
        """UPDATE refresh_families SET revoked_at = now(), revoked_reason = $2
           WHERE user_id = $1 AND revoked_at IS NULL AND id IS DISTINCT FROM $3 RETURNING id""",
        user_id,
        reason,
        keep,
    )
    return [row["id"] for row in rows]


async def refresh_token_is_live(conn: asyncpg.Connection, token_hash: bytes, family_id: uuid.UUID) -> bool:
    """True when this token exists in the family and has not been rotated itself."""
    return bool(
        await conn.fetchval(
            "SELECT rotated_at IS NULL FROM refresh_tokens WHERE token_hash = $1 AND family_id = $2",
            token_hash,
            family_id,
        )
    )


# --- audit log ---------------------------------------------------------------

AUDIT_COLUMNS = (
    "id, occurred_at, actor_id, actor_role, action, subject_type, subject_id, "
    "host(client_ip) AS client_ip, request_id, details"
)


async def insert_audit_entries(conn: asyncpg.Connection, entries: list[dict[str, Any]]) -> None:
    """Inserts the entries in order, in one round trip; the chain trigger assigns id, prev_hash and hash."""
    columns = ("actor_id", "actor_role", "action", "subject_type", "subject_id", "client_ip", "request_id")
    await conn.execute(
        """INSERT INTO audit_log (actor_id, actor_role, action, subject_type, subject_id, client_ip,
                                  request_id, details)
           SELECT actor_id, actor_role, action, subject_type, subject_id, client_ip, request_id, details::jsonb
           FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::inet[], $7::text[],
                       $8::text[]) WITH ORDINALITY
                AS e(actor_id, actor_role, action, subject_type, subject_id, client_ip, request_id, details, n)
           ORDER BY n""",
        *([entry[c] for entry in entries] for c in columns),
        # Sent as text so it works on any connection, with or without the pool's jsonb codec.
        [json.dumps(entry["details"]) for entry in entries],
    )


@dataclass(frozen=True)
class AuditQuery:
    actor_id: uuid.UUID | None = None
    action: str | None = None
    subject_type: str | None = None
    subject_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before_id: int | None = None
    limit: int = 50


async def search_audit_entries(conn: asyncpg.Connection, query: AuditQuery) -> list[asyncpg.Record]:
    """Newest first; page on with before_id = the last id returned."""
    return await conn.fetch(
        f"""SELECT {AUDIT_COLUMNS} FROM audit_log
            WHERE ($1::uuid IS NULL OR actor_id = $1)
              AND ($2::text IS NULL OR action = $2)
              AND ($3::text IS NULL OR subject_type = $3)
              AND ($4::text IS NULL OR subject_id = $4)
              AND ($5::timestamptz IS NULL OR occurred_at >= $5)
              AND ($6::timestamptz IS NULL OR occurred_at < $6)
              AND ($7::bigint IS NULL OR id < $7)
            ORDER BY id DESC LIMIT $8""",
        query.actor_id,
        query.action,
        query.subject_type,
        query.subject_id,
        query.since,
        query.until,
        query.before_id,
        query.limit,
    )
