"""Pushes the live queue: on a queue signal each node recomputes the queue once and sends it to its own clients.

Signals are coalesced (at most one refresh per `DEBOUNCE_S`), so a burst of changes
costs one query per node, and consoles hear of any change well within a second.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import socketio

from chat import serialize
from chat.config import ChatConfig
from chat.realtime import QUEUE_ROOM, user_room
from chat.store import doctors as doctor_store
from chat.store import waiting_queue
from store.connections import Stores

log = logging.getLogger(__name__)

DEBOUNCE_S = 0.1


class QueueBroadcaster:
    def __init__(self, stores: Stores, config: ChatConfig, server: socketio.AsyncServer) -> None:
        self._stores = stores
        self._config = config
        self._server = server
        self._pending = False
        self._task: asyncio.Task | None = None

    async def on_signal(self, signal: dict[str, Any]) -> None:
        self._pending = True
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._refresh_while_pending())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _refresh_while_pending(self) -> None:
        while self._pending:
            await asyncio.sleep(DEBOUNCE_S)
            self._pending = False
            try:
                await self.push_local()
            except Exception as exc:
                if self._stores.report_outage(exc) is None:
                    log.exception("queue refresh failed")

    async def snapshot(self) -> dict[str, Any]:
        async with self._stores.pool.acquire() as conn:
            rows = await waiting_queue.queue_rows(conn, self._config.queue_ageing_minutes * 60)
            doctors = await doctor_store.list_doctor_presence(conn, self._config.presence_grace_s)
            mean = await waiting_queue.mean_consultation_seconds(conn)
        online = sum(1 for d in doctors if d["online"] and d["availability"] == "available")
        return {
            "rows": rows,
            "doctors": doctors,
            "online": online,
            "mean_s": mean or self._config.default_consultation_minutes * 60,
        }

    async def push_local(self) -> None:
        """Sends the queue to this node's subscribed consoles and each waiting patient's position."""
        local_rooms = self._server.manager.rooms.get("/", {})
        snap = await self.snapshot()
        if local_rooms.get(QUEUE_ROOM):
            await self._server.emit("queue:snapshot", queue_message(snap), room=QUEUE_ROOM, ignore_queue=True)
        for row in snap["rows"]:
            room = user_room(row["patient_id"])
            if not local_rooms.get(room):
                continue
            position = serialize.queue_position(row["position"], snap["online"], snap["mean_s"])
            await self._server.emit(
                "queue:position", {"consultation_id": str(row["id"]), **position}, room=room, ignore_queue=True
            )


def queue_message(snap: dict[str, Any]) -> dict[str, Any]:
    return {
        "queue": [serialize.queue_entry(r) for r in snap["rows"]],
        "doctors": [serialize.doctor(d) for d in snap["doctors"]],
        "generated_at": datetime.now(UTC).isoformat(),
    }
