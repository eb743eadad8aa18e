"""Doctors' online state: open connections keep `last_seen` fresh; the last one closing starts the grace period.

Availability (available / away) is the doctor's explicit choice and lives in
PostgreSQL; being online is derived: seen within SKINDOC_PRESENCE_GRACE_SECONDS.
Each node refreshes `last_seen` for the doctors connected to it every third of
the grace period, so a doctor connected anywhere stays online, and one whose
every connection dropped (or whose node died) goes offline at most one grace
period later and gets no new cases.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from chat.config import ChatConfig
from chat.service import ChatService
from chat.store import doctors
from store.connections import Stores

log = logging.getLogger(__name__)


class DoctorPresence:
    def __init__(self, stores: Stores, config: ChatConfig, service: ChatService) -> None:
        self._stores = stores
        self._config = config
        self._service = service
        self._local: dict[uuid.UUID, set[str]] = {}
        self._tasks: set[asyncio.Task] = set()
        self._heartbeat: asyncio.Task | None = None

    def start(self) -> None:
        self._heartbeat = asyncio.create_task(self._beat_forever(), name="chat-presence-heartbeat")

    async def stop(self) -> None:
        tasks = [*self._tasks, *([self._heartbeat] if self._heartbeat else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def connected(self, doctor_id: uuid.UUID, sid: str) -> None:
        first_here = doctor_id not in self._local
        self._local.setdefault(doctor_id, set()).add(sid)
        async with self._stores.pool.acquire() as conn:
            await doctors.ensure_doctor(conn, doctor_id, self._config.doctor_capacity)
            before = await doctors.get_doctor(conn, doctor_id, self._config.presence_grace_s)
            await doctors.mark_doctors_seen(conn, [doctor_id])
            after = await doctors.get_doctor(conn, doctor_id, self._config.presence_grace_s)
        if first_here and not before["online"]:
            await self._service.presence_changed(after)
            if after["availability"] == "available":
                await self._service.drain_backlog()

    async def disconnected(self, doctor_id: uuid.UUID, sid: str) -> None:
        sids = self._local.get(doctor_id)
        if sids is None:
            return
        sids.discard(sid)
        if sids:
            return
        del self._local[doctor_id]
        async with self._stores.pool.acquire() as conn:
            # The grace period runs from now, not from the last heartbeat.
            await doctors.mark_doctors_seen(conn, [doctor_id])
        task = asyncio.create_task(self._announce_if_offline(doctor_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _announce_if_offline(self, doctor_id: uuid.UUID) -> None:
        await asyncio.sleep(self._config.presence_grace_s + 0.2)
        async with self._stores.pool.acquire() as conn:
            row = await doctors.get_doctor(conn, doctor_id, self._config.presence_grace_s)
        if row is not None and not row["online"]:
            await self._service.presence_changed(row)

    async def _beat_forever(self) -> None:
        interval = max(self._config.presence_grace_s / 3, 0.2)
        while True:
            await asyncio.sleep(interval)
            try:
                if self._local:
                    async with self._stores.pool.acquire() as conn:
                        await doctors.mark_doctors_seen(conn, list(self._local))
                # A safety net: anything a lost signal left waiting is picked up here.
                await self._service.drain_backlog()
            except Exception as exc:
                if self._stores.report_outage(exc) is None:
                    log.exception("presence heartbeat failed")
