"""The chat inside a consultation, for the REST routes and the Socket.IO namespace: history, sending (stored
before it is acknowledged, then pushed to the room) and read marks."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import socketio

from auth.audit import AuditContext
from auth.principal import Principal
from chat import serialize
from chat.access import authorize_consultation
from chat.messages import MessageWriter
from chat.realtime import consultation_room
from chat.store import consultations
from chat.store import messages as message_store
from chat.store.messages import PendingMessage
from store.connections import Stores
from store.errors import conflict

log = logging.getLogger(__name__)


class MessageService:
    def __init__(self, stores: Stores, server: socketio.AsyncServer, writer: MessageWriter) -> None:
        self._stores = stores
        self._server = server
        self._writer = writer
        self._pushes: set[asyncio.Task] = set()

    async def history(
        self,
        principal: Principal,
        ctx: AuditContext,
        consultation_id: uuid.UUID,
        *,
        after_seq: int | None,
        before_seq: int | None,
        limit: int,
    ) -> tuple[list[dict], bool]:
        async with self._stores.pool.acquire() as conn, conn.transaction():
            await authorize_consultation(conn, principal, consultation_id, action="read")
            if before_seq is not None:
                rows = await message_store.messages_before(conn, consultation_id, before_seq, limit + 1)
                has_more = len(rows) > limit
                rows = rows[1:] if has_more else rows
            else:
                rows = await message_store.messages_after(conn, consultation_id, after_seq or 0, limit + 1)
                has_more = len(rows) > limit
                rows = rows[:limit]
            await consultations.record_read(
                conn,
                ctx,
                "chat.history.read",
                consultation_id,
                {"after_seq": after_seq, "before_seq": before_seq, "count": len(rows)},
            )
        return [serialize.message(r) for r in rows], has_more

    async def send(
        self,
        principal: Principal,
        ctx: AuditContext,
        consultation_id: uuid.UUID,
        client_msg_id: str,
        body: str,
        sender_sid: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Stores the message, then pushes it to the room without holding up the sender's ack.

        The sender's own socket gets the message in its ack, so the push skips it; its
        other devices still get the push.
        """
        stored = await self._writer.send(PendingMessage(consultation_id, principal, client_msg_id, body, ctx))
        if stored.row is None:
            async with self._stores.pool.acquire() as conn:
                row = await authorize_consultation(conn, principal, consultation_id, action="chat")
            raise conflict(
                "wrong_state", f"Messages can be sent only while the consultation is active (it is {row['state']})."
            )
        message = serialize.message(stored.row)
        if not stored.duplicate:
            self._push_after_ack("message", message, room=consultation_room(consultation_id), skip_sid=sender_sid)
        return message, stored.duplicate

    def _push_after_ack(self, event: str, data: dict[str, Any], **emit_args: Any) -> None:
        # The message is already stored: a client that misses this push finds it on resync.
        task = asyncio.create_task(self._server.emit(event, data, **emit_args))
        self._pushes.add(task)
        task.add_done_callback(self._push_done)

    def _push_done(self, task: asyncio.Task) -> None:
        self._pushes.discard(task)
        error = None if task.cancelled() else task.exception()
        if error is not None and self._stores.report_outage(error) is None:
            log.error("push failed", exc_info=error)

    async def mark_read(self, principal: Principal, consultation_id: uuid.UUID, seq: int) -> int:
        async with self._stores.pool.acquire() as conn:
            await authorize_consultation(conn, principal, consultation_id, action="chat")
            read_seq = await message_store.mark_read(conn, consultation_id, principal.user_id, seq)
        await self._server.emit(
            "read",
            {"consultation_id": str(consultation_id), "user_id": str(principal.user_id), "read_seq": read_seq},
            room=consultation_room(consultation_id),
        )
        return read_seq
