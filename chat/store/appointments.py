"""Follow-up appointments: a doctor proposes slots, the patient confirms one or declines."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from auth.audit import AuditContext
from store.errors import conflict, not_found, unprocessable


@dataclass(frozen=True)
class SlotRequest:
    starts_at: datetime
    minutes: int
    kind: str
    location: str


_BOOKED_OVERLAP = """SELECT EXISTS (
    SELECT 1 FROM appointments a JOIN appointment_slots s ON s.id = a.confirmed_slot_id
    WHERE a.doctor_id = $1 AND a.state = 'confirmed'
      AND tstzrange(s.starts_at, s.starts_at + make_interval(mins => s.minutes))
          && tstzrange($2::timestamptz, $2::timestamptz + make_interval(mins => $3::int)))"""


async def appointment_with_slots(
    conn: asyncpg.Connection, appointment_id: uuid.UUID, *, for_update: bool = False
) -> tuple[asyncpg.Record, list[asyncpg.Record]] | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(f"SELECT * FROM appointments WHERE id = $1{lock}", appointment_id)
    if row is None:
        return None
    slots = await conn.fetch(
        "SELECT * FROM appointment_slots WHERE appointment_id = $1 ORDER BY starts_at", appointment_id
    )
    return row, slots


async def propose_appointment_txn(
    conn: asyncpg.Connection, *, consultation: asyncpg.Record, slots: list[SlotRequest], ctx: AuditContext
) -> tuple[asyncpg.Record, list]:
    async with conn.transaction():
        doctor_id = consultation["doctor_id"]
        for slot in slots:
            if await conn.fetchval(_BOOKED_OVERLAP, doctor_id, slot.starts_at, slot.minutes):
                raise conflict("slot_taken", f"You already have an appointment at {slot.starts_at.isoformat()}.")
        appointment = await conn.fetchrow(
            """INSERT INTO appointments (consultation_id, doctor_id, patient_id) VALUES ($1, $2, $3)
               RETURNING *""",
            consultation["id"],
            doctor_id,
            consultation["patient_id"],
        )
        for slot in slots:
            await conn.execute(
                """INSERT INTO appointment_slots (appointment_id, starts_at, minutes, kind, location)
                   VALUES ($1, $2, $3, $4, $5)""",
                appointment["id"],
                slot.starts_at,
                slot.minutes,
                slot.kind,
                slot.location,
            )
        await ctx.record(
            conn,
            "appointment.propose",
            "appointment",
            appointment["id"],
            {"consultation_id": str(consultation["id"]), "slots": len(slots)},
        )
        return await appointment_with_slots(conn, appointment["id"])


async def _lock_proposal(
    conn: asyncpg.Connection, appointment_id: uuid.UUID, patient_id: uuid.UUID
) -> tuple[asyncpg.Record, list[asyncpg.Record]]:
    """The patient's appointment, locked, while it still waits for their answer; else 404 or 409."""
    found = await appointment_with_slots(conn, appointment_id, for_update=True)
    if found is None or found[0]["patient_id"] != patient_id:
        raise not_found("appointment_not_found", "No such appointment.")
    if found[0]["state"] != "proposed":
        raise conflict("wrong_state", f"This appointment is already {found[0]['state']}.")
    return found


async def confirm_appointment_txn(
    conn: asyncpg.Connection, *, appointment_id: uuid.UUID, patient_id: uuid.UUID, slot_id: uuid.UUID, ctx: AuditContext
) -> tuple[asyncpg.Record, list]:
    async with conn.transaction():
        appointment, slots = await _lock_proposal(conn, appointment_id, patient_id)
        slot = next((s for s in slots if s["id"] == slot_id), None)
        if slot is None:
            raise unprocessable("invalid_field", "'slot_id' is not one of this appointment's slots.", field="slot_id")
        # The doctor's row lock serialises confirmations for one doctor: no double booking.
        await conn.execute("SELECT 1 FROM chat_doctors WHERE doctor_id = $1 FOR UPDATE", appointment["doctor_id"])
        if await conn.fetchval(_BOOKED_OVERLAP, appointment["doctor_id"], slot["starts_at"], slot["minutes"]):
            raise conflict("slot_taken", "The doctor has been booked at that time meanwhile; choose another slot.")
        await conn.execute(
            """UPDATE appointments SET state = 'confirmed', confirmed_slot_id = $2, responded_at = now()
               WHERE id = $1""",
            appointment_id,
            slot_id,
        )
        await ctx.record(conn, "appointment.confirm", "appointment", appointment_id, {"slot_id": str(slot_id)})
        return await appointment_with_slots(conn, appointment_id)


async def decline_appointment_txn(
    conn: asyncpg.Connection, *, appointment_id: uuid.UUID, patient_id: uuid.UUID, reason: str | None, ctx: AuditContext
) -> tuple[asyncpg.Record, list]:
    async with conn.transaction():
        await _lock_proposal(conn, appointment_id, patient_id)
        await conn.execute(
            """UPDATE appointments SET state = 'declined', decline_reason = $2, responded_at = now()
               WHERE id = $1""",
            appointment_id,
            reason,
        )
        await ctx.record(conn, "appointment.decline", "appointment", appointment_id, {"reason": reason})
        return await appointment_with_slots(conn, appointment_id)


async def list_appointments_txn(
    conn: asyncpg.Connection, *, user_id: uuid.UUID, ctx: AuditContext
) -> list[tuple[asyncpg.Record, list]]:
    async with conn.transaction():
        rows = await conn.fetch(
            """SELECT * FROM appointments WHERE patient_id = $1 OR doctor_id = $1
               ORDER BY created_at DESC LIMIT 200""",
            user_id,
        )
        slots = await conn.fetch(
            "SELECT * FROM appointment_slots WHERE appointment_id = ANY($1::uuid[]) ORDER BY starts_at",
            [r["id"] for r in rows],
        )
        await ctx.record(conn, "appointment.list", "user", user_id, {"count": len(rows)})
    by_appointment: dict[uuid.UUID, list] = {r["id"]: [] for r in rows}
    for slot in slots:
        by_appointment[slot["appointment_id"]].append(slot)
    return [(r, by_appointment[r["id"]]) for r in rows]
