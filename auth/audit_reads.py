"""The audit log as admins and the command line read it: a search (itself audited) and the check of its chain."""

from __future__ import annotations

from typing import Any

from auth import audit, audit_chain, store
from auth.audit import AuditContext
from store.connections import Stores


class AuditLogReader:
    def __init__(self, stores: Stores) -> None:
        self._stores = stores

    async def search(self, query: store.AuditQuery, *, ctx: AuditContext) -> list[dict]:
        async with self._stores.pool.acquire() as conn, conn.transaction():
            rows = await store.search_audit_entries(conn, query)
            # Reading the log is itself a read of patient data.
            await ctx.record(
                conn, "admin.audit_search", "audit_log", None, {"filters": _query_filters(query), "returned": len(rows)}
            )
        return [audit.entry_as_json(row) for row in rows]

    async def verify_chain(self, key: bytes) -> audit_chain.Verification:
        async with self._stores.pool.acquire() as conn:
            return await audit_chain.verify_chain(conn, key)


def _query_filters(query: store.AuditQuery) -> dict[str, Any]:
    return {k: str(v) for k, v in vars(query).items() if v is not None and k != "limit"}
