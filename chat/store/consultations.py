"""A consultation's life outside pairing: open, read, list, cancel, resolve, and its triage score."""

from __future__ import annotations

import uuid

import asyncpg

from auth.audit import AuditContext
from chat.store.case_scores import SELECT_SCORED, scored
from chat.store.context import SYSTEM
from store.errors import conflict
from triage import checklist, urgency_policy
from triage.policy import ConsultationTriage


async def create_consultation_txn(
    conn: asyncpg.Connection,
    *,
    patient_id: uuid.UUID,
    description: str,
    body_site: str,
    symptoms: dict,
    max_open: int,
    ctx: AuditContext,
) -> asyncpg.Record:
    answers = checklist.evaluate(symptoms)
    async with conn.transaction():
        # Serialises one patient's concurrent opens so the limit cannot be overshot.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))", str(patient_id))
        open_count = await conn.fetchval(
            "SELECT count(*) FROM consultations WHERE patient_id = $1 AND state IN ('waiting', 'active')", patient_id
        )
        if open_count >= max_open:
            raise conflict(
                "patient_at_capacity",
                f"You already have {open_count} open consultations; close one before opening another.",
            )
        row = await conn.fetchrow(
            scored("""INSERT INTO consultations (patient_id, description, body_site, symptoms, checklist_score,
                                                 checklist_band, urgency)
                      VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING *"""),
            patient_id,
            description,
            body_site,
            symptoms,
            answers.score,
            answers.band,
        )
        await ctx.record(
            conn,
            "consultation.create",
            "consultation",
            row["id"],
            {"body_site": body_site, "checklist_score": answers.score},
        )
        return row


async def get_consultation(conn: asyncpg.Connection, consultation_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(f"{SELECT_SCORED} WHERE c.id = $1", consultation_id)


async def list_consultations_txn(
    conn: asyncpg.Connection, *, user_id: uuid.UUID, as_doctor: bool, state: str | None, limit: int, ctx: AuditContext
) -> list[asyncpg.Record]:
    column = "doctor_id" if as_doctor else "patient_id"
    async with conn.transaction():
        rows = await conn.fetch(
            f"""{SELECT_SCORED} WHERE c.{column} = $1 AND ($2::text IS NULL OR c.state = $2)
                ORDER BY c.created_at DESC, c.id LIMIT $3""",
            user_id,
            state,
            limit,
        )
        await ctx.record(conn, "consultation.list", "user", user_id, {"state": state, "count": len(rows)})
    return rows


async def record_read(
    conn: asyncpg.Connection, ctx: AuditContext, action: str, consultation_id: uuid.UUID, details: dict | None = None
) -> None:
    await ctx.record(conn, action, "consultation", consultation_id, details)


async def active_consultation_ids(conn: asyncpg.Connection, user_id: uuid.UUID) -> list[uuid.UUID]:
    rows = await conn.fetch(
        "SELECT id FROM consultations WHERE state = 'active' AND (patient_id = $1 OR doctor_id = $1)", user_id
    )
    return [r["id"] for r in rows]


async def cancel_consultation_txn(
    conn: asyncpg.Connection,
    *,
    consultation_id: uuid.UUID,
    patient_id: uuid.UUID,
    reason: str | None,
    ctx: AuditContext,
) -> asyncpg.Record:
    return await _close_txn(
        conn,
        ctx,
        """UPDATE consultations SET state = 'cancelled', closed_at = now(), cancel_reason = $3
            WHERE id = $1 AND patient_id = $2 AND state IN ('waiting', 'active') RETURNING *""",
        consultation_id,
        (patient_id, reason),
        refusal="Only a waiting or active consultation can be cancelled.",
        action="consultation.cancel",
        details={"reason": reason},
    )


async def resolve_txn(
    conn: asyncpg.Connection,
    *,
    consultation_id: uuid.UUID,
    doctor_id: uuid.UUID,
    outcome: str,
    note: str,
    ctx: AuditContext,
) -> asyncpg.Record:
    return await _close_txn(
        conn,
        ctx,
        """UPDATE consultations SET state = 'resolved', closed_at = now(), outcome = $3, outcome_note = $4
            WHERE id = $1 AND doctor_id = $2 AND state = 'active' RETURNING *""",
        consultation_id,
        (doctor_id, outcome, note),
        refusal="Only an active consultation assigned to you can be resolved.",
        action="consultation.resolve",
        details={"outcome": outcome},
    )


async def _close_txn(
    conn: asyncpg.Connection,
    ctx: AuditContext,
    update: str,
    consultation_id: uuid.UUID,
    args: tuple,
    *,
    refusal: str,
    action: str,
    details: dict,
) -> asyncpg.Record:
    """Closes a consultation by `update` (its arguments: the consultation's id, then `args`; it matches no row
    unless the case is in a state it may leave), audited as `action`; else 409 wrong_state with `refusal`."""
    async with conn.transaction():
        row = await conn.fetchrow(scored(update), consultation_id, *args)
        if row is None:
            raise conflict("wrong_state", refusal)
        await ctx.record(conn, action, "consultation", consultation_id, details)
        return row


async def set_band_from_score_txn(
    conn: asyncpg.Connection, consultation_id: uuid.UUID, summary: ConsultationTriage
) -> str | None:
    """Sets the case's band by the urgency policy from the deciding photo's band, under the row lock; returns
    the band (None: no such case). The score itself is triage's to store (chat/store/case_scores.py)."""
    image_band, trusted = summary.urgency, summary.trusted
    async with conn.transaction():
        current = await conn.fetchrow(
            "SELECT checklist_band, urgency FROM consultations WHERE id = $1 FOR UPDATE", consultation_id
        )
        if current is None:
            return None
        band = urgency_policy.effective_band(
            current["checklist_band"], image_band, trusted, previous_band=current["urgency"]
        )
        await conn.execute("UPDATE consultations SET urgency = $2 WHERE id = $1", consultation_id, band)
        await SYSTEM.record(
            conn,
            "consultation.score",
            "consultation",
            consultation_id,
            {
                "urgency": band,
                "image_band": image_band,
                "score_trusted": trusted,
                "p_malignant": summary.p_malignant,
                "model_version": summary.model_version,
            },
        )
        return band
