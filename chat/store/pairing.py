"""Pairing doctors with waiting cases: take one, take the next, automatic assignment, transfer."""

from __future__ import annotations

import uuid

import asyncpg

from auth.audit import AuditContext
from chat.store.case_scores import SCORE_JOIN, scored
from chat.store.context import SYSTEM
from chat.store.waiting_queue import QUEUE_ORDER
from store.errors import DomainError, conflict, not_found, unprocessable


async def _lock_doctor_with_room(conn: asyncpg.Connection, doctor_id: uuid.UUID) -> None:
    """Locks the doctor's row (waiting for it) and checks they have spare capacity, counting under the lock."""
    capacity = await conn.fetchval("SELECT capacity FROM chat_doctors WHERE doctor_id = $1 FOR UPDATE", doctor_id)
    if capacity is None:
        raise not_found("doctor_not_found", "No such doctor is known to the consultation service.")
    active = await conn.fetchval(
        "SELECT count(*) FROM consultations WHERE doctor_id = $1 AND state = 'active'", doctor_id
    )
    if active >= capacity:
        raise conflict("doctor_at_capacity", f"The doctor already has {active} of {capacity} active consultations.")


async def _assign(conn: asyncpg.Connection, consultation_id: uuid.UUID, doctor_id: uuid.UUID) -> asyncpg.Record:
    await conn.execute("UPDATE chat_doctors SET last_assigned_at = now() WHERE doctor_id = $1", doctor_id)
    return await conn.fetchrow(
        scored("""UPDATE consultations SET state = 'active', doctor_id = $2, assigned_at = now()
                  WHERE id = $1 RETURNING *"""),
        consultation_id,
        doctor_id,
    )


async def _already_with(conn: asyncpg.Connection, patient_id: uuid.UUID, doctor_id: uuid.UUID) -> bool:
    return await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM consultations WHERE patient_id = $1 AND doctor_id = $2 AND state = 'active')",
        patient_id,
        doctor_id,
    )


async def take_case_txn(
    conn: asyncpg.Connection, *, doctor_id: uuid.UUID, consultation_id: uuid.UUID, ctx: AuditContext
) -> asyncpg.Record:
    """A doctor takes one named waiting case."""
    async with conn.transaction():
        await _lock_doctor_with_room(conn, doctor_id)
        case = await conn.fetchrow("SELECT * FROM consultations WHERE id = $1 FOR UPDATE", consultation_id)
        if case is None:
            raise not_found("consultation_not_found", "No such consultation.")
        if case["state"] != "waiting":
            raise _not_waiting(case, doctor_id)
        if await _already_with(conn, case["patient_id"], doctor_id):
            raise conflict("already_with_doctor", "You already have an active consultation with this patient.")
        row = await _assign(conn, consultation_id, doctor_id)
        await ctx.record(conn, "consultation.take", "consultation", consultation_id, {"doctor_id": str(doctor_id)})
        return row


def _not_waiting(case: asyncpg.Record, doctor_id: uuid.UUID) -> DomainError:
    """Why a named case cannot be taken: a console must tell a lost race from a bad id (404)."""
    if case["doctor_id"] is not None and case["doctor_id"] != doctor_id:
        return conflict("already_taken", "Another doctor has taken this case.")
    if case["doctor_id"] == doctor_id and case["state"] == "active":
        return conflict("wrong_state", "This case is already yours.")
    return conflict("wrong_state", f"This case is no longer waiting (it is {case['state']}).")


async def take_next_txn(
    conn: asyncpg.Connection, *, doctor_id: uuid.UUID, ageing_s: int, ctx: AuditContext
) -> asyncpg.Record:
    """A doctor takes the head of the queue (skipping patients they already see and cases being taken)."""
    async with conn.transaction():
        await _lock_doctor_with_room(conn, doctor_id)
        case = await conn.fetchrow(
            f"""SELECT c.* FROM consultations c {SCORE_JOIN}
                WHERE c.state = 'waiting' AND NOT EXISTS (
                    SELECT 1 FROM consultations a
                    WHERE a.patient_id = c.patient_id AND a.doctor_id = $2 AND a.state = 'active')
                ORDER BY {QUEUE_ORDER} LIMIT 1 FOR UPDATE OF c SKIP LOCKED""",
            float(ageing_s),
            doctor_id,
        )
        if case is None:
            raise conflict("queue_empty", "No waiting case is free for you to take.")
        row = await _assign(conn, case["id"], doctor_id)
        await ctx.record(conn, "consultation.take", "consultation", case["id"], {"doctor_id": str(doctor_id)})
        return row


async def assign_next_waiting_txn(
    conn: asyncpg.Connection, *, ageing_s: int, grace_s: int, max_cases_tried: int = 20
) -> asyncpg.Record | None:
    """One automatic assignment: the most urgent waiting case that some eligible doctor can take.

    Eligible: available, online, under capacity, not already seeing this patient, not the
    doctor who handed this case back. Among them the patient's last doctor comes first,
    then the least loaded. Returns None when nothing can be assigned now.
    """
    async with conn.transaction():
        tried: list[uuid.UUID] = []
        for _ in range(max_cases_tried):
            case = await conn.fetchrow(
                f"""SELECT c.* FROM consultations c {SCORE_JOIN}
                    WHERE c.state = 'waiting' AND c.id <> ALL($2::uuid[])
                    ORDER BY {QUEUE_ORDER} LIMIT 1 FOR UPDATE OF c SKIP LOCKED""",
                float(ageing_s),
                tried,
            )
            if case is None:
                return None
            doctor_id = await conn.fetchval(
                """WITH last_doctor AS (
                       SELECT doctor_id FROM consultations
                       WHERE patient_id = $1 AND state = 'resolved' ORDER BY closed_at DESC LIMIT 1),
                   loads AS (
                       SELECT d.doctor_id, d.last_assigned_at, d.capacity,
                              (SELECT count(*) FROM consultations a
                               WHERE a.doctor_id = d.doctor_id AND a.state = 'active') AS active
                       FROM chat_doctors d
                       WHERE d.availability = 'available' AND d.last_seen > now() - make_interval(secs => $2)
                         AND d.doctor_id IS DISTINCT FROM $3)
                   SELECT l.doctor_id FROM loads l JOIN chat_doctors d USING (doctor_id)
                   WHERE l.active < l.capacity AND NOT EXISTS (
                       SELECT 1 FROM consultations a
                       WHERE a.patient_id = $1 AND a.doctor_id = l.doctor_id AND a.state = 'active')
                   ORDER BY (l.doctor_id = (SELECT doctor_id FROM last_doctor)) IS TRUE DESC,
                            l.active, l.last_assigned_at NULLS FIRST, l.doctor_id
                   LIMIT 1 FOR UPDATE OF d SKIP LOCKED""",
                case["patient_id"],
                float(grace_s),
                case["transferred_from"],
            )
            if doctor_id is not None and await _still_has_room(conn, doctor_id):
                row = await _assign(conn, case["id"], doctor_id)
                await SYSTEM.record(
                    conn,
                    "consultation.assign",
                    "consultation",
                    case["id"],
                    {"doctor_id": str(doctor_id), "mode": "auto"},
                )
                return row
            if not await _any_doctor_has_room(conn, grace_s):
                return None
            tried.append(case["id"])
        return None


async def _still_has_room(conn: asyncpg.Connection, doctor_id: uuid.UUID) -> bool:
    # Re-counted after the doctor's row is locked: the selecting statement's snapshot may predate
    # an assignment that committed while we waited.
    return await conn.fetchval(
        """SELECT (SELECT count(*) FROM consultations WHERE doctor_id = $1 AND state = 'active') < capacity
           FROM chat_doctors WHERE doctor_id = $1""",
        doctor_id,
    )


async def _any_doctor_has_room(conn: asyncpg.Connection, grace_s: int) -> bool:
    return await conn.fetchval(
        """SELECT EXISTS (SELECT 1 FROM chat_doctors d
           WHERE d.availability = 'available' AND d.last_seen > now() - make_interval(secs => $1)
             AND (SELECT count(*) FROM consultations a WHERE a.doctor_id = d.doctor_id AND a.state = 'active')
                 < d.capacity)""",
        float(grace_s),
    )


async def transfer_txn(
    conn: asyncpg.Connection,
    *,
    consultation_id: uuid.UUID,
    doctor_id: uuid.UUID,
    to_doctor_id: uuid.UUID | None,
    reason: str,
    ctx: AuditContext,
) -> asyncpg.Record:
    """Hands an active case back to the queue, or to a named doctor with spare capacity."""
    async with conn.transaction():
        if to_doctor_id is not None:
            if to_doctor_id == doctor_id:
                raise unprocessable("invalid_field", "'to_doctor_id' must be another doctor.", field="to_doctor_id")
            await _lock_doctor_with_room(conn, to_doctor_id)
        case = await conn.fetchrow(
            "SELECT * FROM consultations WHERE id = $1 AND doctor_id = $2 AND state = 'active' FOR UPDATE",
            consultation_id,
            doctor_id,
        )
        if case is None:
            raise conflict("wrong_state", "Only an active consultation assigned to you can be transferred.")
        if to_doctor_id is None:
            row = await conn.fetchrow(
                scored("""UPDATE consultations SET state = 'waiting', doctor_id = NULL, assigned_at = NULL,
                                 transferred_from = $2
                          WHERE id = $1 RETURNING *"""),
                consultation_id,
                doctor_id,
            )
        else:
            if await _already_with(conn, case["patient_id"], to_doctor_id):
                raise conflict(
                    "already_with_doctor", "That doctor already has an active consultation with this patient."
                )
            await conn.execute("UPDATE chat_doctors SET last_assigned_at = now() WHERE doctor_id = $1", to_doctor_id)
            row = await conn.fetchrow(
                scored("UPDATE consultations SET doctor_id = $2, assigned_at = now() WHERE id = $1 RETURNING *"),
                consultation_id,
                to_doctor_id,
            )
        await ctx.record(
            conn,
            "consultation.transfer",
            "consultation",
            consultation_id,
            {"from": str(doctor_id), "to": str(to_doctor_id) if to_doctor_id else None, "reason": reason},
        )
        return row
