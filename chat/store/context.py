"""Who caused a chat change and from where: every audited store function takes one."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from auth import audit
from auth.principal import Principal


@dataclass(frozen=True)
class AuditContext:
    """Who caused a change and from where, for the audit rows written inside the change's transaction."""
    actor: Principal | None
    client_ip: str | None = None
    request_id: str | None = None

    def __post_init__(self) -> None:
        # Cleaned once here, not per audit row: a chat connection's context serves every message it sends.
        object.__setattr__(self, "client_ip", audit.valid_ip(self.client_ip))
        object.__setattr__(self, "request_id", audit.printable(self.request_id))

    def entry(self, action: str, subject_type: str, subject_id: Any, details: dict | None = None) -> audit.AuditEntry:
        return audit.AuditEntry(self.actor, action, subject_type,
                                str(subject_id) if subject_id is not None else None,
                                self.client_ip, self.request_id, details)

    async def record(self, conn: asyncpg.Connection, action: str, subject_type: str, subject_id: Any,
                     details: dict | None = None) -> None:
        await audit.record_many(conn, [self.entry(action, subject_type, subject_id, details)])


SYSTEM = AuditContext(actor=None, request_id="chat-auto-pairing")
