"""This node's signed-in sockets: who each one is (the actor of its audit rows), when its token runs out,
and which sign-ins were revoked (those sockets are told and closed)."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from typing import Any

import socketio

from auth.audit import AuditContext
from auth.principal import Principal
from auth.service import AuthService


class Connection:
    """What this node knows about one socket: who it is, what its audit rows say, when its token runs out."""

    def __init__(self, sid: str, principal: Principal, client_ip: str | None) -> None:
        self.ctx = AuditContext(principal, client_ip, f"sio-{sid}")
        self.expiry: asyncio.TimerHandle | None = None
        self.revoked = False

    @property
    def principal(self) -> Principal:
        return self.ctx.actor

    @principal.setter
    def principal(self, fresh: Principal) -> None:
        self.ctx = dataclasses.replace(self.ctx, actor=fresh)


class SocketSessions:
    def __init__(self, namespace: socketio.AsyncNamespace, auth_service: AuthService) -> None:
        self._namespace = namespace
        self._auth = auth_service
        self._connections: dict[str, Connection] = {}
        self._expiring: set[asyncio.Task] = set()

    def get(self, sid: str) -> Connection | None:
        return self._connections.get(sid)

    def open(self, sid: str, principal: Principal, client_ip: str | None) -> None:
        connection = Connection(sid, principal, client_ip)
        self._connections[sid] = connection
        self._schedule_expiry(sid, connection)

    def close(self, sid: str) -> Connection | None:
        connection = self._connections.pop(sid, None)
        if connection is not None and connection.expiry is not None:
            connection.expiry.cancel()
        return connection

    def renew(self, sid: str, fresh: Principal) -> None:
        """A fresh token for the same account: the socket lives until it runs out."""
        connection = self._connections[sid]
        connection.principal = fresh
        self._schedule_expiry(sid, connection)

    def _schedule_expiry(self, sid: str, connection: Connection) -> None:
        if connection.expiry is not None:
            connection.expiry.cancel()
        delay = (connection.principal.expires_at - datetime.now(UTC)).total_seconds()
        loop = asyncio.get_running_loop()
        connection.expiry = loop.call_later(max(delay, 0), self._start_expiry, sid)

    def _start_expiry(self, sid: str) -> None:
        task = asyncio.ensure_future(self._expire(sid))
        self._expiring.add(task)  # asyncio keeps only weak references to tasks
        task.add_done_callback(self._expiring.discard)

    async def _expire(self, sid: str) -> None:
        await self._namespace.emit("session:expired", {}, to=sid)
        await self._namespace.disconnect(sid)

    async def close_revoked_sessions(self, signal: dict[str, Any]) -> None:
        """SESSIONS_SIGNAL, on every node: this node's sockets of the revoked sessions are told and closed."""
        revoked = set(signal.get("session_ids") or [])
        doomed = [
            sid
            for sid, connection in list(self._connections.items())
            if str(connection.principal.session_id) in revoked
        ]
        await self._close_revoked(doomed, str(signal.get("reason") or "revoked"))

    async def sweep_revoked_sessions(self) -> int:
        """Closes this node's sockets whose tokens HTTP would now refuse; a safety net for a lost signal
        (and for accounts disabled straight in the database). Returns how many it closed."""
        connections = list(self._connections.items())
        sessions = {(c.principal.user_id, c.principal.session_id) for _, c in connections}
        revoked = set(await self._auth.revoked_sessions(sorted(sessions, key=str)))
        doomed = [sid for sid, c in connections if (c.principal.user_id, c.principal.session_id) in revoked]
        await self._close_revoked(doomed, "revoked")
        return len(doomed)

    async def _close_revoked(self, sids: list[str], reason: str) -> None:
        for sid in sids:
            connection = self._connections.get(sid)
            if connection is None or connection.revoked:
                continue
            # Refused from now on, before the disconnect has gone through.
            connection.revoked = True
            await self._namespace.emit("session:revoked", {"reason": reason}, to=sid)
            await self._namespace.disconnect(sid)
