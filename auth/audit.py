"""The audit log every domain writes to: who did what to which subject, when, from where.

Rows are append-only (the runtime role may only SELECT and INSERT, and a trigger
refuses UPDATE, DELETE and TRUNCATE to anyone) and hash-chained by the database;
servers sign the chain's head at intervals with a key the database never holds
(auth/audit_chain.py), so `skindoc audit verify` can name the first row altered
behind the application's back. Call `AuditContext.record` inside the transaction
that makes the change, so the change and its audit row commit together. The
chain lock is held until that transaction ends: keep such transactions short.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from typing import Any

import asyncpg

from auth import store
from auth.principal import Principal


@dataclass(frozen=True)
class AuditEntry:
    actor: Principal | None
    action: str
    subject_type: str
    subject_id: str | None
    client_ip: str | None = None
    request_id: str | None = None
    details: dict | None = None


@dataclass(frozen=True)
class AuditContext:
    """Who causes a change and from where: the one actor type every domain passes down, built from a
    request by auth.context.audit_context (or by hand for the command line and background work)."""

    actor: Principal | None
    client_ip: str | None = None
    request_id: str | None = None

    def __post_init__(self) -> None:
        # Cleaned once here, not per audit row: a chat connection's context serves every message it sends.
        object.__setattr__(self, "client_ip", valid_ip(self.client_ip))
        object.__setattr__(self, "request_id", printable(self.request_id))

    def as_actor(self, actor: Principal | None) -> AuditContext:
        """The same origin acting as someone else (a sign-in acts as the account it has just opened)."""
        return replace(self, actor=actor)

    def entry(self, action: str, subject_type: str, subject_id: Any, details: dict | None = None) -> AuditEntry:
        return AuditEntry(
            self.actor,
            action,
            subject_type,
            str(subject_id) if subject_id is not None else None,
            self.client_ip,
            self.request_id,
            details,
        )

    async def record(
        self, conn: asyncpg.Connection, action: str, subject_type: str, subject_id: Any, details: dict | None = None
    ) -> None:
        """One audit row, inside the caller's transaction."""
        await record_many(conn, [self.entry(action, subject_type, subject_id, details)])


async def record_many(conn: asyncpg.Connection, entries: list[AuditEntry]) -> None:
    """Records several entries in one round trip, in order (a group commit's messages, say): the one path
    by which every audit row of every domain is written."""
    if not entries:
        return  # no round trip, and no wait for the chain's lock
    await store.insert_audit_entries(
        conn,
        [
            {
                "actor_id": entry.actor.user_id if entry.actor else None,
                "actor_role": entry.actor.role if entry.actor else None,
                "action": entry.action,
                "subject_type": entry.subject_type,
                "subject_id": entry.subject_id,
                "client_ip": valid_ip(entry.client_ip),
                "request_id": printable(entry.request_id),
                "details": entry.details or {},
            }
            for entry in entries
        ],
    )


def valid_ip(value: str | None) -> str | None:
    # request.remote is None or a socket path for unix sockets; keep only real addresses.
    try:
        return str(ipaddress.ip_address(value)) if value else None
    except ValueError:
        return None


def printable(value: str | None) -> str | None:
    # The request id may come from a client's header: keep what a text column and a log reader can take.
    return "".join(c for c in value if c.isascii() and c.isprintable()) if value is not None else None


def entry_as_json(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "occurred_at": row["occurred_at"].isoformat(),
        "actor_id": str(row["actor_id"]) if row["actor_id"] else None,
        "actor_role": row["actor_role"],
        "action": row["action"],
        "subject_type": row["subject_type"],
        "subject_id": row["subject_id"],
        "client_ip": row["client_ip"],
        "request_id": row["request_id"],
        "details": row["details"],
    }


async def runtime_role_problem(conn: asyncpg.Connection) -> str | None:
    """Why this connection's role could rewrite the audit log (owner, superuser, UPDATE/DELETE/TRUNCATE), or None."""
    row = await conn.fetchrow(
        """SELECT r.rolsuper AS superuser, pg_has_role(c.relowner, 'USAGE') AS owner,
                  pg_get_userbyid(c.relowner) AS owner_name,
                  has_table_privilege(c.oid, 'UPDATE, DELETE, TRUNCATE') AS can_change
           FROM pg_class c JOIN pg_roles r ON r.rolname = current_user
           WHERE c.oid = 'audit_log'::regclass"""
    )
    if row["superuser"]:
        return "it is a superuser"
    if row["owner"]:
        return f"it owns the audit log (or is a member of its owner, {row['owner_name']})"
    if row["can_change"]:
        return "it may UPDATE, DELETE or TRUNCATE the audit log"
    return None
