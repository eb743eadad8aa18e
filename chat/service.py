"""Consultation use cases shared by the REST routes and the Socket.IO namespace: check access, run the
transaction, then tell the people concerned (room moves, `consultation:updated`, queue signal, auto pairing).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import socketio

from auth import store as auth_store
from auth.audit import AuditContext
from auth.principal import Principal
from chat import serialize
from chat.access import authorize_consultation, require_clinician, require_patient
from chat.appointment_service import AppointmentService
from chat.config import ChatConfig
from chat.message_service import MessageService
from chat.messages import MessageWriter
from chat.outcomes import store as outcomes_store
from chat.outcomes.validation import WorkingDiagnosis
from chat.realtime import QUEUE_ROOM, QueueNotifier, consultation_room, move_users, user_room
from chat.store import consultations, doctors, pairing, waiting_queue
from chat.store import messages as message_store
from chat.validation import NewConsultation
from store.connections import Stores
from store.errors import forbidden, not_found


class ChatService:
    def __init__(self, stores: Stores, config: ChatConfig, server: socketio.AsyncServer, writer: MessageWriter) -> None:
        self._stores = stores
        self.config = config
        self._server = server
        self.notifier = QueueNotifier(server)
        self.messages = MessageService(stores, server, writer)
        self.appointments = AppointmentService(stores, config, server)
        self._drain_lock = asyncio.Lock()

    @property
    def pool(self) -> asyncpg.Pool:
        return self._stores.pool

    @property
    def ageing_s(self) -> int:
        return self.config.queue_ageing_minutes * 60

    # ---- consultations ----------------------------------------------------------------------

    async def open_consultation(self, principal: Principal, ctx: AuditContext, new: NewConsultation) -> dict[str, Any]:
        require_patient(principal)
        async with self.pool.acquire() as conn:
            row = await consultations.create_consultation_txn(
                conn,
                patient_id=principal.user_id,
                description=new.description,
                body_site=new.body_site,
                symptoms=new.symptoms,
                max_open=self.config.patient_max_open,
                ctx=ctx,
            )
        await self.notifier.queue_changed("created", row["id"])
        await self.drain_backlog()
        return await self._view(row)

    async def list_consultations(
        self, principal: Principal, ctx: AuditContext, state: str | None, limit: int
    ) -> list[dict[str, Any]]:
        if principal.role == "doctor":
            require_clinician(principal)
        elif principal.role != "patient":
            raise forbidden("forbidden_role", "Only patients and doctors have consultations.")
        async with self.pool.acquire() as conn:
            rows = await consultations.list_consultations_txn(
                conn, user_id=principal.user_id, as_doctor=principal.role == "doctor", state=state, limit=limit, ctx=ctx
            )
        queue = await self._positions() if any(r["state"] == "waiting" for r in rows) else {}
        return [serialize.consultation(r, queue.get(r["id"])) for r in rows]

    async def get_consultation(
        self, principal: Principal, ctx: AuditContext, consultation_id: uuid.UUID, action: str = "read"
    ) -> dict[str, Any]:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await authorize_consultation(conn, principal, consultation_id, action=action)
            await consultations.record_read(conn, ctx, "consultation.read", consultation_id)
        return await self._view(row)

    async def cancel(
        self, principal: Principal, ctx: AuditContext, consultation_id: uuid.UUID, reason: str | None
    ) -> dict[str, Any]:
        async with self.pool.acquire() as conn:
            await authorize_consultation(conn, principal, consultation_id, action="cancel")
            row = await consultations.cancel_consultation_txn(
                conn, consultation_id=consultation_id, patient_id=principal.user_id, reason=reason, ctx=ctx
            )
        await self._changed(row, "cancelled", extra_users=[])
        await self.drain_backlog()  # an active case's doctor has room again
        return serialize.consultation(row)

    async def take(self, principal: Principal, ctx: AuditContext, consultation_id: uuid.UUID | None) -> dict[str, Any]:
        require_clinician(principal)
        async with self.pool.acquire() as conn:
            await doctors.ensure_doctor(conn, principal.user_id, self.config.doctor_capacity)
            if consultation_id is None:
                row = await pairing.take_next_txn(conn, doctor_id=principal.user_id, ageing_s=self.ageing_s, ctx=ctx)
            else:
                # No authorize_consultation here: take_case_txn decides under the case's row lock, so a
                # doctor who loses the race hears 409 already_taken, never "no such consultation".
                row = await pairing.take_case_txn(
                    conn, doctor_id=principal.user_id, consultation_id=consultation_id, ctx=ctx
                )
        await self._assigned(row)
        return serialize.consultation(row)

    async def transfer(
        self,
        principal: Principal,
        ctx: AuditContext,
        consultation_id: uuid.UUID,
        reason: str,
        to_doctor_id: uuid.UUID | None,
    ) -> dict[str, Any]:
        async with self.pool.acquire() as conn:
            await authorize_consultation(conn, principal, consultation_id, action="transfer")
            row = await pairing.transfer_txn(
                conn,
                consultation_id=consultation_id,
                doctor_id=principal.user_id,
                to_doctor_id=to_doctor_id,
                reason=reason,
                ctx=ctx,
            )
        room = consultation_room(consultation_id)
        await move_users(self._server, [principal.user_id], room, join=False)
        if to_doctor_id is not None:
            await move_users(self._server, [to_doctor_id], room, join=True)
        await self._changed(row, "transferred", extra_users=[principal.user_id])
        await self.drain_backlog()
        return serialize.consultation(row)

    async def resolve(
        self,
        principal: Principal,
        ctx: AuditContext,
        consultation_id: uuid.UUID,
        outcome: str,
        note: str,
        diagnosis: WorkingDiagnosis | None = None,
    ) -> dict[str, Any]:
        async with self.pool.acquire() as conn:
            await authorize_consultation(conn, principal, consultation_id, action="resolve")
            async with conn.transaction():
                row = await consultations.resolve_txn(
                    conn,
                    consultation_id=consultation_id,
                    doctor_id=principal.user_id,
                    outcome=outcome,
                    note=note,
                    ctx=ctx,
                )
                if diagnosis is not None:
                    await outcomes_store.record_working_diagnosis(
                        conn, consultation_id, diagnosis, principal.user_id, ctx
                    )
        await self._changed(row, "resolved", extra_users=[])
        await self.drain_backlog()
        return serialize.consultation(row)

    # ---- the queue --------------------------------------------------------------------------

    async def queue(self, principal: Principal, ctx: AuditContext) -> list[dict[str, Any]]:
        require_clinician(principal)
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await waiting_queue.queue_rows(conn, self.ageing_s)
            await waiting_queue.record_queue_read(conn, ctx, len(rows))
        return [serialize.queue_entry(r) for r in rows]

    async def drain_backlog(self) -> int:
        """Assigns waiting cases to eligible doctors until none can be; returns how many were assigned."""
        assigned = 0
        # One drain at a time per node: concurrent drains would only skip each other's locked rows.
        async with self._drain_lock:
            while True:
                async with self.pool.acquire() as conn:
                    row = await pairing.assign_next_waiting_txn(
                        conn, ageing_s=self.ageing_s, grace_s=self.config.presence_grace_s
                    )
                if row is None:
                    return assigned
                assigned += 1
                await self._assigned(row)

    async def _positions(self) -> dict[uuid.UUID, dict[str, int]]:
        async with self.pool.acquire() as conn:
            rows = await waiting_queue.queue_rows(conn, self.ageing_s)
            online = await doctors.count_online_available(conn, self.config.presence_grace_s)
            mean = await waiting_queue.mean_consultation_seconds(conn)
        mean_s = mean or self.config.default_consultation_minutes * 60
        return {r["id"]: serialize.queue_position(r["position"], online, mean_s) for r in rows}

    async def _view(self, row: asyncpg.Record) -> dict[str, Any]:
        queue = (await self._positions()).get(row["id"]) if row["state"] == "waiting" else None
        return serialize.consultation(row, queue)

    # ---- doctors ----------------------------------------------------------------------------

    async def doctor_status(self, principal: Principal) -> dict[str, Any]:
        require_clinician(principal)
        async with self.pool.acquire() as conn:
            await doctors.ensure_doctor(conn, principal.user_id, self.config.doctor_capacity)
            row = await doctors.get_doctor(conn, principal.user_id, self.config.presence_grace_s)
        return serialize.doctor(row)

    async def set_availability(self, principal: Principal, ctx: AuditContext, availability: str) -> dict[str, Any]:
        require_clinician(principal)
        async with self.pool.acquire() as conn:
            await doctors.ensure_doctor(conn, principal.user_id, self.config.doctor_capacity)
            await doctors.set_availability_txn(conn, principal.user_id, availability, ctx)
            row = await doctors.get_doctor(conn, principal.user_id, self.config.presence_grace_s)
        await self.presence_changed(row)
        if availability == "available":
            await self.drain_backlog()
        return serialize.doctor(row)

    async def set_capacity(
        self, principal: Principal, ctx: AuditContext, doctor_id: uuid.UUID, capacity: int
    ) -> dict[str, Any]:
        if principal.role != "admin":
            raise forbidden("forbidden_role", "Only an admin can change a doctor's capacity.")
        async with self.pool.acquire() as conn:
            if (await auth_store.get_role_and_status(conn, doctor_id) or (None,))[0] != "doctor":
                raise not_found("doctor_not_found", "No such doctor.")
            await doctors.ensure_doctor(conn, doctor_id, self.config.doctor_capacity)
            await doctors.set_capacity_txn(conn, doctor_id, capacity, ctx)
            row = await doctors.get_doctor(conn, doctor_id, self.config.presence_grace_s)
        await self.drain_backlog()
        return serialize.doctor(row)

    async def presence_changed(self, row: asyncpg.Record) -> None:
        event = {"doctor_id": str(row["doctor_id"]), "availability": row["availability"], "online": row["online"]}
        await self._server.emit("presence", event, room=[QUEUE_ROOM, user_room(row["doctor_id"])])
        await self.notifier.queue_changed("presence", None)

    # ---- telling people ---------------------------------------------------------------------

    async def _assigned(self, row: asyncpg.Record) -> None:
        room = consultation_room(row["id"])
        await move_users(self._server, [row["patient_id"], row["doctor_id"]], room, join=True)
        await self._changed(row, "assigned", extra_users=[])

    async def _changed(self, row: asyncpg.Record, reason: str, extra_users: list[uuid.UUID]) -> None:
        users = {row["patient_id"], *extra_users}
        if row["doctor_id"] is not None:
            users.add(row["doctor_id"])
        body = {"consultation": serialize.consultation(row), "reason": reason}
        await self._server.emit("consultation:updated", body, room=[user_room(u) for u in users])
        await self.notifier.queue_changed(reason, row["id"])

    async def active_consultation_ids(self, user_id: uuid.UUID) -> list[uuid.UUID]:
        async with self.pool.acquire() as conn:
            return await consultations.active_consultation_ids(conn, user_id)

    async def join_consultation(
        self,
        principal: Principal,
        ctx: AuditContext,
        consultation_id: uuid.UUID,
        after_seq: int,
        enter_room: Callable[[], Awaitable[None]],
    ) -> tuple[dict, list[dict], bool]:
        """Checks `read` access, lets the socket into the room, then reads the messages after `after_seq`.

        Entering before reading closes the gap: a message committed after the read is pushed
        to the room, and one pushed before the socket entered was committed before the read.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            row = await authorize_consultation(conn, principal, consultation_id, action="read")
            await enter_room()
            rows = await message_store.messages_after(conn, consultation_id, after_seq, 201)
            await consultations.record_read(
                conn,
                ctx,
                "chat.history.read",
                consultation_id,
                {"after_seq": after_seq, "count": min(len(rows), 200), "via": "join"},
            )
        return await self._view(row), [serialize.message(r) for r in rows[:200]], len(rows) > 200
