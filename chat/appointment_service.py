"""Follow-up appointments: the assigned doctor proposes slots, the patient confirms one or declines.

Both people hear of every change (`appointment:updated` to each one's user room).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import socketio

from auth.audit import AuditContext
from auth.principal import Principal
from chat import serialize
from chat.access import authorize_consultation, require_clinician, require_patient
from chat.config import ChatConfig
from chat.realtime import user_room
from chat.store import appointments, doctors
from store.connections import Stores
from store.errors import conflict, forbidden

# A store transaction a patient runs on one of their proposals: (conn, patient_id=, ...) -> (row, slots).
PatientAnswer = Callable[..., Awaitable[tuple[asyncpg.Record, list]]]


class AppointmentService:
    def __init__(self, stores: Stores, config: ChatConfig, server: socketio.AsyncServer) -> None:
        self._stores = stores
        self._config = config
        self._server = server

    async def propose(
        self, principal: Principal, ctx: AuditContext, consultation_id: uuid.UUID, slots: list[appointments.SlotRequest]
    ) -> dict[str, Any]:
        async with self._stores.pool.acquire() as conn:
            consultation = await authorize_consultation(conn, principal, consultation_id, action="appoint")
            if consultation["state"] != "active":
                raise conflict("wrong_state", "Appointments can be proposed only in an active consultation.")
            await doctors.ensure_doctor(conn, principal.user_id, self._config.doctor_capacity)
            row, slot_rows = await appointments.propose_appointment_txn(
                conn, consultation=consultation, slots=slots, ctx=ctx
            )
        return await self._changed(row, slot_rows)

    async def confirm(
        self, principal: Principal, ctx: AuditContext, appointment_id: uuid.UUID, slot_id: uuid.UUID
    ) -> dict[str, Any]:
        return await self._patient_answers(
            principal, appointments.confirm_appointment_txn, appointment_id=appointment_id, slot_id=slot_id, ctx=ctx
        )

    async def decline(
        self, principal: Principal, ctx: AuditContext, appointment_id: uuid.UUID, reason: str | None
    ) -> dict[str, Any]:
        return await self._patient_answers(
            principal, appointments.decline_appointment_txn, appointment_id=appointment_id, reason=reason, ctx=ctx
        )

    async def _patient_answers(self, principal: Principal, answer: PatientAnswer, **args: Any) -> dict[str, Any]:
        require_patient(principal)
        async with self._stores.pool.acquire() as conn:
            row, slot_rows = await answer(conn, patient_id=principal.user_id, **args)
        return await self._changed(row, slot_rows)

    async def list_for(self, principal: Principal, ctx: AuditContext) -> list[dict[str, Any]]:
        if principal.role == "doctor":
            require_clinician(principal)
        elif principal.role != "patient":
            raise forbidden("forbidden_role", "Only patients and doctors have appointments.")
        async with self._stores.pool.acquire() as conn:
            found = await appointments.list_appointments_txn(conn, user_id=principal.user_id, ctx=ctx)
        return [serialize.appointment(row, slots) for row, slots in found]

    async def _changed(self, row: asyncpg.Record, slot_rows: list) -> dict[str, Any]:
        body = serialize.appointment(row, slot_rows)
        await self._server.emit(
            "appointment:updated",
            {"appointment": body},
            room=[user_room(row["patient_id"]), user_room(row["doctor_id"])],
        )
        return body
