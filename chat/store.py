"""The chat domain's SQL: one named function per query or transaction (queue, pairing, messages, appointments).

Lock order, so that concurrent nodes never deadlock: a transaction that may wait
for a lock takes doctor rows (`chat_doctors`) before consultation rows, and
appointment rows before doctor rows; the automatic pairing only ever uses
`SKIP LOCKED`, so it never waits at all.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from auth import audit
from auth.principal import Principal
from store.errors import DomainError, conflict, not_found, unprocessable
from triage import checklist, urgency_policy

BAND_RANK = {"urgent": 0, "soon": 1, "routine": 2}

# Effective rank: the band's rank minus one per ageing interval waited (it may go below 0).
_EFFECTIVE_RANK = """((CASE c.urgency WHEN 'urgent' THEN 0 WHEN 'soon' THEN 1 ELSE 2 END)
    - floor(extract(epoch FROM now() - c.queued_at) / $1)::int)"""
# Within a band: the photo score only where the photo gate trusted it (an untrusted score ranks like no
# score at all, so it can never move a case down), then the longest wait.
_QUEUE_ORDER = (f"{_EFFECTIVE_RANK}, CASE WHEN c.score_trusted THEN c.p_malignant END DESC NULLS LAST, "
                "c.queued_at, c.id")

# A doctor's presence row; $1 is the grace period in seconds.
_DOCTOR_COLUMNS = """d.doctor_id, d.capacity, d.availability,
    coalesce(d.last_seen > now() - make_interval(secs => $1), false) AS online,
    (SELECT count(*) FROM consultations a WHERE a.doctor_id = d.doctor_id AND a.state = 'active') AS active"""


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


# ---- doctors: capacity and presence -------------------------------------------------------------

async def ensure_doctor(conn: asyncpg.Connection, doctor_id: uuid.UUID, default_capacity: int) -> None:
    await conn.execute(
        "INSERT INTO chat_doctors (doctor_id, capacity) VALUES ($1, $2) ON CONFLICT (doctor_id) DO NOTHING",
        doctor_id, default_capacity)


async def get_doctor(conn: asyncpg.Connection, doctor_id: uuid.UUID, grace_s: int) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_DOCTOR_COLUMNS} FROM chat_doctors d WHERE d.doctor_id = $2",
                               float(grace_s), doctor_id)


async def list_doctor_presence(conn: asyncpg.Connection, grace_s: int) -> list[asyncpg.Record]:
    return await conn.fetch(f"SELECT {_DOCTOR_COLUMNS} FROM chat_doctors d ORDER BY d.doctor_id", float(grace_s))


async def set_availability_txn(conn: asyncpg.Connection, doctor_id: uuid.UUID, availability: str,
                               ctx: AuditContext) -> None:
    async with conn.transaction():
        await conn.execute(
            "UPDATE chat_doctors SET availability = $2, updated_at = now() WHERE doctor_id = $1",
            doctor_id, availability)
        await ctx.record(conn, "doctor.availability", "doctor", doctor_id, {"availability": availability})


async def set_capacity_txn(conn: asyncpg.Connection, doctor_id: uuid.UUID, capacity: int, ctx: AuditContext) -> None:
    async with conn.transaction():
        await conn.execute("UPDATE chat_doctors SET capacity = $2, updated_at = now() WHERE doctor_id = $1",
                           doctor_id, capacity)
        await ctx.record(conn, "doctor.capacity", "doctor", doctor_id, {"capacity": capacity})


async def mark_doctors_seen(conn: asyncpg.Connection, doctor_ids: list[uuid.UUID]) -> None:
    await conn.execute("UPDATE chat_doctors SET last_seen = now() WHERE doctor_id = ANY($1::uuid[])", doctor_ids)


async def count_online_available(conn: asyncpg.Connection, grace_s: int) -> int:
    return await conn.fetchval(
        """SELECT count(*) FROM chat_doctors
           WHERE availability = 'available' AND last_seen > now() - make_interval(secs => $1)""",
        float(grace_s))


# ---- consultations ------------------------------------------------------------------------------

async def create_consultation_txn(conn: asyncpg.Connection, *, patient_id: uuid.UUID, description: str,
                                  body_site: str, symptoms: dict, max_open: int,
                                  ctx: AuditContext) -> asyncpg.Record:
    answers = checklist.evaluate(symptoms)
    async with conn.transaction():
        # Serialises one patient's concurrent opens so the limit cannot be overshot.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))", str(patient_id))
        open_count = await conn.fetchval(
            "SELECT count(*) FROM consultations WHERE patient_id = $1 AND state IN ('waiting', 'active')",
            patient_id)
        if open_count >= max_open:
            raise conflict("patient_at_capacity",
                           f"You already have {open_count} open consultations; close one before opening another.")
        row = await conn.fetchrow(
            """INSERT INTO consultations (patient_id, description, body_site, symptoms, checklist_score,
                                          checklist_band, urgency)
               VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING *""",
            patient_id, description, body_site, symptoms, answers.score, answers.band)
        await ctx.record(conn, "consultation.create", "consultation", row["id"],
                         {"body_site": body_site, "checklist_score": answers.score})
        return row


async def get_consultation(conn: asyncpg.Connection, consultation_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM consultations WHERE id = $1", consultation_id)


async def list_consultations_txn(conn: asyncpg.Connection, *, user_id: uuid.UUID, as_doctor: bool,
                                 state: str | None, limit: int, ctx: AuditContext) -> list[asyncpg.Record]:
    column = "doctor_id" if as_doctor else "patient_id"
    async with conn.transaction():
        rows = await conn.fetch(
            f"""SELECT * FROM consultations WHERE {column} = $1 AND ($2::text IS NULL OR state = $2)
                ORDER BY created_at DESC, id LIMIT $3""",
            user_id, state, limit)
        await ctx.record(conn, "consultation.list", "user", user_id, {"state": state, "count": len(rows)})
    return rows


async def record_read(conn: asyncpg.Connection, ctx: AuditContext, action: str, consultation_id: uuid.UUID,
                      details: dict | None = None) -> None:
    await ctx.record(conn, action, "consultation", consultation_id, details)


async def active_consultation_ids(conn: asyncpg.Connection, user_id: uuid.UUID) -> list[uuid.UUID]:
    rows = await conn.fetch(
        "SELECT id FROM consultations WHERE state = 'active' AND (patient_id = $1 OR doctor_id = $1)", user_id)
    return [r["id"] for r in rows]


async def cancel_consultation_txn(conn: asyncpg.Connection, *, consultation_id: uuid.UUID, patient_id: uuid.UUID,
                                  reason: str | None, ctx: AuditContext) -> asyncpg.Record:
    async with conn.transaction():
        row = await conn.fetchrow(
            """UPDATE consultations SET state = 'cancelled', closed_at = now(), cancel_reason = $3
               WHERE id = $1 AND patient_id = $2 AND state IN ('waiting', 'active') RETURNING *""",
            consultation_id, patient_id, reason)
        if row is None:
            raise conflict("wrong_state", "Only a waiting or active consultation can be cancelled.")
        await ctx.record(conn, "consultation.cancel", "consultation", consultation_id, {"reason": reason})
        return row


async def resolve_txn(conn: asyncpg.Connection, *, consultation_id: uuid.UUID, doctor_id: uuid.UUID, outcome: str,
                      note: str, ctx: AuditContext) -> asyncpg.Record:
    async with conn.transaction():
        row = await conn.fetchrow(
            """UPDATE consultations SET state = 'resolved', closed_at = now(), outcome = $3, outcome_note = $4
               WHERE id = $1 AND doctor_id = $2 AND state = 'active' RETURNING *""",
            consultation_id, doctor_id, outcome, note)
        if row is None:
            raise conflict("wrong_state", "Only an active consultation assigned to you can be resolved.")
        await ctx.record(conn, "consultation.resolve", "consultation", consultation_id, {"outcome": outcome})
        return row


async def apply_triage_result_txn(conn: asyncpg.Connection, *, consultation_id: uuid.UUID, image_band: str,
                                  p_malignant: float, model_version: str, trusted: bool,
                                  gate: dict | None) -> asyncpg.Record | None:
    """Stores the deciding photo's score and sets the case's band by the urgency policy, under the row lock."""
    async with conn.transaction():
        current = await conn.fetchrow("SELECT checklist_band, urgency FROM consultations WHERE id = $1 FOR UPDATE",
                                      consultation_id)
        if current is None:
            return None
        band = urgency_policy.effective_band(current["checklist_band"], image_band, trusted,
                                             previous_band=current["urgency"])
        row = await conn.fetchrow(
            """UPDATE consultations SET urgency = $2, p_malignant = $3, model_version = $4, scored_at = now(),
                                        image_band = $5, score_trusted = $6, gate = $7
               WHERE id = $1 RETURNING *""",
            consultation_id, band, p_malignant, model_version, image_band, trusted, gate)
        await SYSTEM.record(conn, "consultation.score", "consultation", consultation_id,
                            {"urgency": band, "image_band": image_band, "score_trusted": trusted,
                             "p_malignant": p_malignant, "model_version": model_version})
        return row


# ---- pairing ------------------------------------------------------------------------------------

async def _lock_doctor_with_room(conn: asyncpg.Connection, doctor_id: uuid.UUID) -> None:
    """Locks the doctor's row (waiting for it) and checks they have spare capacity, counting under the lock."""
    capacity = await conn.fetchval("SELECT capacity FROM chat_doctors WHERE doctor_id = $1 FOR UPDATE", doctor_id)
    if capacity is None:
        raise not_found("doctor_not_found", "No such doctor is known to the consultation service.")
    active = await conn.fetchval(
        "SELECT count(*) FROM consultations WHERE doctor_id = $1 AND state = 'active'", doctor_id)
    if active >= capacity:
        raise conflict("doctor_at_capacity", f"The doctor already has {active} of {capacity} active consultations.")


async def _assign(conn: asyncpg.Connection, consultation_id: uuid.UUID, doctor_id: uuid.UUID) -> asyncpg.Record:
    await conn.execute("UPDATE chat_doctors SET last_assigned_at = now() WHERE doctor_id = $1", doctor_id)
    return await conn.fetchrow(
        """UPDATE consultations SET state = 'active', doctor_id = $2, assigned_at = now()
           WHERE id = $1 RETURNING *""",
        consultation_id, doctor_id)


async def _already_with(conn: asyncpg.Connection, patient_id: uuid.UUID, doctor_id: uuid.UUID) -> bool:
    return await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM consultations WHERE patient_id = $1 AND doctor_id = $2 AND state = 'active')",
        patient_id, doctor_id)


async def take_case_txn(conn: asyncpg.Connection, *, doctor_id: uuid.UUID, consultation_id: uuid.UUID,
                        ctx: AuditContext) -> asyncpg.Record:
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


async def take_next_txn(conn: asyncpg.Connection, *, doctor_id: uuid.UUID, ageing_s: int,
                        ctx: AuditContext) -> asyncpg.Record:
    """A doctor takes the head of the queue (skipping patients they already see and cases being taken)."""
    async with conn.transaction():
        await _lock_doctor_with_room(conn, doctor_id)
        case = await conn.fetchrow(
            f"""SELECT c.* FROM consultations c
                WHERE c.state = 'waiting' AND NOT EXISTS (
                    SELECT 1 FROM consultations a
                    WHERE a.patient_id = c.patient_id AND a.doctor_id = $2 AND a.state = 'active')
                ORDER BY {_QUEUE_ORDER} LIMIT 1 FOR UPDATE OF c SKIP LOCKED""",
            float(ageing_s), doctor_id)
        if case is None:
            raise conflict("queue_empty", "No waiting case is free for you to take.")
        row = await _assign(conn, case["id"], doctor_id)
        await ctx.record(conn, "consultation.take", "consultation", case["id"], {"doctor_id": str(doctor_id)})
        return row


async def assign_next_waiting_txn(conn: asyncpg.Connection, *, ageing_s: int, grace_s: int,
                                  max_cases_tried: int = 20) -> asyncpg.Record | None:
    """One automatic assignment: the most urgent waiting case that some eligible doctor can take.

    Eligible: available, online, under capacity, not already seeing this patient, not the
    doctor who handed this case back. Among them the patient's last doctor comes first,
    then the least loaded. Returns None when nothing can be assigned now.
    """
    async with conn.transaction():
        tried: list[uuid.UUID] = []
        for _ in range(max_cases_tried):
            case = await conn.fetchrow(
                f"""SELECT c.* FROM consultations c
                    WHERE c.state = 'waiting' AND c.id <> ALL($2::uuid[])
                    ORDER BY {_QUEUE_ORDER} LIMIT 1 FOR UPDATE OF c SKIP LOCKED""",
                float(ageing_s), tried)
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
                case["patient_id"], float(grace_s), case["transferred_from"])
            if doctor_id is not None and await _still_has_room(conn, doctor_id):
                row = await _assign(conn, case["id"], doctor_id)
                await SYSTEM.record(conn, "consultation.assign", "consultation", case["id"],
                                    {"doctor_id": str(doctor_id), "mode": "auto"})
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
           FROM chat_doctors WHERE doctor_id = $1""", doctor_id)


async def _any_doctor_has_room(conn: asyncpg.Connection, grace_s: int) -> bool:
    return await conn.fetchval(
        """SELECT EXISTS (SELECT 1 FROM chat_doctors d
           WHERE d.availability = 'available' AND d.last_seen > now() - make_interval(secs => $1)
             AND (SELECT count(*) FROM consultations a WHERE a.doctor_id = d.doctor_id AND a.state = 'active')
                 < d.capacity)""",
        float(grace_s))


async def transfer_txn(conn: asyncpg.Connection, *, consultation_id: uuid.UUID, doctor_id: uuid.UUID,
                       to_doctor_id: uuid.UUID | None, reason: str, ctx: AuditContext) -> asyncpg.Record:
    """Hands an active case back to the queue, or to a named doctor with spare capacity."""
    async with conn.transaction():
        if to_doctor_id is not None:
            if to_doctor_id == doctor_id:
                raise unprocessable("invalid_field", "'to_doctor_id' must be another doctor.", field="to_doctor_id")
            await _lock_doctor_with_room(conn, to_doctor_id)
        case = await conn.fetchrow(
            "SELECT * FROM consultations WHERE id = $1 AND doctor_id = $2 AND state = 'active' FOR UPDATE",
            consultation_id, doctor_id)
        if case is None:
            raise conflict("wrong_state", "Only an active consultation assigned to you can be transferred.")
        if to_doctor_id is None:
            row = await conn.fetchrow(
                """UPDATE consultations SET state = 'waiting', doctor_id = NULL, assigned_at = NULL,
                          transferred_from = $2
                   WHERE id = $1 RETURNING *""",
                consultation_id, doctor_id)
        else:
            if await _already_with(conn, case["patient_id"], to_doctor_id):
                raise conflict("already_with_doctor",
                               "That doctor already has an active consultation with this patient.")
            await conn.execute("UPDATE chat_doctors SET last_assigned_at = now() WHERE doctor_id = $1", to_doctor_id)
            row = await conn.fetchrow(
                "UPDATE consultations SET doctor_id = $2, assigned_at = now() WHERE id = $1 RETURNING *",
                consultation_id, to_doctor_id)
        await ctx.record(conn, "consultation.transfer", "consultation", consultation_id,
                         {"from": str(doctor_id), "to": str(to_doctor_id) if to_doctor_id else None,
                          "reason": reason})
        return row


# ---- the queue as doctors and patients see it ---------------------------------------------------

async def queue_rows(conn: asyncpg.Connection, ageing_s: int) -> list[asyncpg.Record]:
    """Every waiting case in queue order, with its effective rank and position."""
    return await conn.fetch(
        f"""SELECT c.id, c.patient_id, c.urgency, c.p_malignant, c.scored_at, c.body_site, c.symptoms,
                   c.description, c.queued_at, c.checklist_score, c.checklist_band, c.image_band,
                   c.score_trusted, c.gate,
                   {_EFFECTIVE_RANK} AS effective_rank,
                   extract(epoch FROM now() - c.queued_at)::int AS waiting_seconds,
                   row_number() OVER (ORDER BY {_QUEUE_ORDER}) AS position
            FROM consultations c WHERE c.state = 'waiting' ORDER BY position""",
        float(ageing_s))


async def mean_consultation_seconds(conn: asyncpg.Connection) -> float | None:
    return await conn.fetchval(
        """SELECT avg(extract(epoch FROM closed_at - assigned_at)) FROM (
               SELECT closed_at, assigned_at FROM consultations
               WHERE state = 'resolved' AND assigned_at IS NOT NULL ORDER BY closed_at DESC LIMIT 50) recent""")


async def record_queue_read(conn: asyncpg.Connection, ctx: AuditContext, size: int) -> None:
    await ctx.record(conn, "queue.read", "queue", None, {"size": size})


# ---- messages -----------------------------------------------------------------------------------

@dataclass
class PendingMessage:
    consultation_id: uuid.UUID
    sender: Principal
    client_msg_id: str
    body: str
    ctx: AuditContext


@dataclass
class StoredMessage:
    row: asyncpg.Record | None  # None: the sender may not post in this consultation now
    duplicate: bool


async def insert_messages(conn: asyncpg.Connection, batch: list[PendingMessage]) -> list[StoredMessage]:
    """Stores a batch of messages in one transaction (group commit), each with the next sequence number.

    One statement, `chat_store_messages` (chat migration 0002), whatever the batch's
    size: it locks the consultations in id order, stores each message with its audit
    row, and keeps the batch's arrival order within each consultation. A client id
    sent twice (in this batch or before) is stored once.
    """
    first_of: dict[tuple, int] = {}
    for i, m in enumerate(batch):
        first_of.setdefault((m.consultation_id, m.sender.user_id, m.client_msg_id), i)
    unique = list(first_of.values())  # in arrival order
    rows = await conn.fetch(
        # Addresses go as text and PostgreSQL parses them: asyncpg would parse each in Python first.
        "SELECT * FROM chat_store_messages($1, $2, $3, $4, $5, $6::text[]::inet[], $7)",
        [batch[i].consultation_id for i in unique], [batch[i].sender.user_id for i in unique],
        [batch[i].sender.role for i in unique], [batch[i].client_msg_id for i in unique],
        [batch[i].body for i in unique], [batch[i].ctx.client_ip for i in unique],
        [batch[i].ctx.request_id for i in unique])
    # The statement numbers its input from 1; a message it refused has no row.
    by_first = {unique[r["n"] - 1]: StoredMessage(r, duplicate=r["outcome"] == "duplicate") for r in rows}
    answers = []
    for i, m in enumerate(batch):
        first = first_of[(m.consultation_id, m.sender.user_id, m.client_msg_id)]
        result = by_first.get(first, StoredMessage(None, duplicate=False))
        # A repeat of a client id within one batch gets the first one's row, marked as a duplicate.
        answers.append(result if i == first or result.row is None else StoredMessage(result.row, duplicate=True))
    return answers


async def messages_after(conn: asyncpg.Connection, consultation_id: uuid.UUID, after_seq: int,
                         limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM consultation_messages WHERE consultation_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        consultation_id, after_seq, limit)


async def messages_before(conn: asyncpg.Connection, consultation_id: uuid.UUID, before_seq: int,
                          limit: int) -> list[asyncpg.Record]:
    rows = await conn.fetch(
        """SELECT * FROM consultation_messages WHERE consultation_id = $1 AND seq < $2
           ORDER BY seq DESC LIMIT $3""",
        consultation_id, before_seq, limit)
    return list(reversed(rows))


async def mark_read(conn: asyncpg.Connection, consultation_id: uuid.UUID, user_id: uuid.UUID, seq: int) -> int:
    return await conn.fetchval(
        """INSERT INTO consultation_reads (consultation_id, user_id, read_seq) VALUES ($1, $2, $3)
           ON CONFLICT (consultation_id, user_id) DO UPDATE
           SET read_seq = GREATEST(consultation_reads.read_seq, EXCLUDED.read_seq), updated_at = now()
           RETURNING read_seq""",
        consultation_id, user_id, seq)


# ---- appointments -------------------------------------------------------------------------------

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


async def appointment_with_slots(conn: asyncpg.Connection, appointment_id: uuid.UUID,
                                 *, for_update: bool = False) -> tuple[asyncpg.Record, list[asyncpg.Record]] | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(f"SELECT * FROM appointments WHERE id = $1{lock}", appointment_id)
    if row is None:
        return None
    slots = await conn.fetch("SELECT * FROM appointment_slots WHERE appointment_id = $1 ORDER BY starts_at",
                             appointment_id)
    return row, slots


async def propose_appointment_txn(conn: asyncpg.Connection, *, consultation: asyncpg.Record,
                                  slots: list[SlotRequest], ctx: AuditContext) -> tuple[asyncpg.Record, list]:
    async with conn.transaction():
        doctor_id = consultation["doctor_id"]
        for slot in slots:
            if await conn.fetchval(_BOOKED_OVERLAP, doctor_id, slot.starts_at, slot.minutes):
                raise conflict("slot_taken", f"You already have an appointment at {slot.starts_at.isoformat()}.")
        appointment = await conn.fetchrow(
            """INSERT INTO appointments (consultation_id, doctor_id, patient_id) VALUES ($1, $2, $3)
               RETURNING *""",
            consultation["id"], doctor_id, consultation["patient_id"])
        for slot in slots:
            await conn.execute(
                """INSERT INTO appointment_slots (appointment_id, starts_at, minutes, kind, location)
                   VALUES ($1, $2, $3, $4, $5)""",
                appointment["id"], slot.starts_at, slot.minutes, slot.kind, slot.location)
        await ctx.record(conn, "appointment.propose", "appointment", appointment["id"],
                         {"consultation_id": str(consultation["id"]), "slots": len(slots)})
        return await appointment_with_slots(conn, appointment["id"])


async def confirm_appointment_txn(conn: asyncpg.Connection, *, appointment_id: uuid.UUID, patient_id: uuid.UUID,
                                  slot_id: uuid.UUID, ctx: AuditContext) -> tuple[asyncpg.Record, list]:
    async with conn.transaction():
        found = await appointment_with_slots(conn, appointment_id, for_update=True)
        if found is None or found[0]["patient_id"] != patient_id:
            raise not_found("appointment_not_found", "No such appointment.")
        appointment, slots = found
        if appointment["state"] != "proposed":
            raise conflict("wrong_state", f"This appointment is already {appointment['state']}.")
        slot = next((s for s in slots if s["id"] == slot_id), None)
        if slot is None:
            raise unprocessable("invalid_field", "'slot_id' is not one of this appointment's slots.", field="slot_id")
        # The doctor's row lock serialises confirmations for one doctor: no double booking.
        await conn.execute("SELECT 1 FROM chat_doctors WHERE doctor_id = $1 FOR UPDATE", appointment["doctor_id"])
        if await conn.fetchval(_BOOKED_OVERLAP, appointment["doctor_id"], slot["starts_at"], slot["minutes"]):
            raise conflict("slot_taken", "The doctor has been booked at that time meanwhile; choose another slot.")
        await conn.execute(
            """UPDATE appointments SET state = 'confirmed', confirmed_slot_id = $2, responded_at = now()
               WHERE id = $1""", appointment_id, slot_id)
        await ctx.record(conn, "appointment.confirm", "appointment", appointment_id, {"slot_id": str(slot_id)})
        return await appointment_with_slots(conn, appointment_id)


async def decline_appointment_txn(conn: asyncpg.Connection, *, appointment_id: uuid.UUID, patient_id: uuid.UUID,
                                  reason: str | None, ctx: AuditContext) -> tuple[asyncpg.Record, list]:
    async with conn.transaction():
        found = await appointment_with_slots(conn, appointment_id, for_update=True)
        if found is None or found[0]["patient_id"] != patient_id:
            raise not_found("appointment_not_found", "No such appointment.")
        if found[0]["state"] != "proposed":
            raise conflict("wrong_state", f"This appointment is already {found[0]['state']}.")
        await conn.execute(
            """UPDATE appointments SET state = 'declined', decline_reason = $2, responded_at = now()
               WHERE id = $1""", appointment_id, reason)
        await ctx.record(conn, "appointment.decline", "appointment", appointment_id, {"reason": reason})
        return await appointment_with_slots(conn, appointment_id)


async def list_appointments_txn(conn: asyncpg.Connection, *, user_id: uuid.UUID,
                                ctx: AuditContext) -> list[tuple[asyncpg.Record, list]]:
    async with conn.transaction():
        rows = await conn.fetch(
            """SELECT * FROM appointments WHERE patient_id = $1 OR doctor_id = $1
               ORDER BY created_at DESC LIMIT 200""", user_id)
        slots = await conn.fetch(
            "SELECT * FROM appointment_slots WHERE appointment_id = ANY($1::uuid[]) ORDER BY starts_at",
            [r["id"] for r in rows])
        await ctx.record(conn, "appointment.list", "user", user_id, {"count": len(rows)})
    by_appointment: dict[uuid.UUID, list] = {r["id"]: [] for r in rows}
    for slot in slots:
        by_appointment[slot["appointment_id"]].append(slot)
    return [(r, by_appointment[r["id"]]) for r in rows]
