"""The outcomes' SQL: working diagnoses, histopathology results (append-only, corrections chained), and the
confirmed cases the performance figures and the export read. Scores come from triage's tables: the live one
(chat/store/case_scores.py) and every model version's (`triage_case_scores`).
"""

from __future__ import annotations

import uuid

import asyncpg

from auth import audit
from auth.audit import AuditContext
from chat.outcomes.validation import HistopathologyEntry, WorkingDiagnosis
from chat.store.case_scores import SCORE_JOIN
from store.errors import conflict
from triage import bands

# A resolved case whose current histopathology result is known: the cases every figure is computed on.
_CONFIRMED = """histopathology_current h JOIN consultations c ON c.id = h.consultation_id AND c.state = 'resolved'"""


async def record_working_diagnosis(
    conn: asyncpg.Connection,
    consultation_id: uuid.UUID,
    diagnosis: WorkingDiagnosis,
    doctor_id: uuid.UUID,
    ctx: AuditContext,
) -> None:
    """Inside the resolve's transaction: the diagnosis commits with the resolution or not at all."""
    await conn.execute(
        """INSERT INTO consultation_diagnoses (consultation_id, working_diagnosis, biopsy_taken, recorded_by)
           VALUES ($1, $2, $3, $4)""",
        consultation_id,
        diagnosis.diagnosis,
        diagnosis.biopsy_taken,
        doctor_id,
    )
    await ctx.record(
        conn,
        "outcome.diagnosis.record",
        "consultation",
        consultation_id,
        {"working_diagnosis": diagnosis.diagnosis, "biopsy_taken": diagnosis.biopsy_taken},
    )


async def get_working_diagnosis(conn: asyncpg.Connection, consultation_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM consultation_diagnoses WHERE consultation_id = $1", consultation_id)


async def histopathology_history(conn: asyncpg.Connection, consultation_id: uuid.UUID) -> list[asyncpg.Record]:
    """Every result entered for the case, newest first; the first is the current one."""
    return await conn.fetch(
        "SELECT * FROM histopathology_results WHERE consultation_id = $1 ORDER BY entered_at DESC, id", consultation_id
    )


async def add_histopathology_txn(
    conn: asyncpg.Connection, consultation_id: uuid.UUID, entry: HistopathologyEntry, ctx: AuditContext
) -> asyncpg.Record:
    """Stores a first result, or a correction of the current one; a stale correction changes nothing."""
    async with conn.transaction():
        # Serialises entries for one case, so two corrections of the same result cannot both land.
        await conn.execute("SELECT 1 FROM consultations WHERE id = $1 FOR UPDATE", consultation_id)
        current = await conn.fetchval(
            "SELECT id FROM histopathology_current WHERE consultation_id = $1", consultation_id
        )
        if current != entry.supersedes:
            if current is None:
                raise conflict(
                    "no_result_to_correct",
                    "This case has no histopathology result yet; enter a first result without 'supersedes'.",
                )
            raise conflict(
                "stale_result",
                "This case already has a histopathology result: a new entry must "
                "correct the current one ('supersedes' its id, with a reason).",
                current_result_id=str(current),
            )
        row = await conn.fetchrow(
            """INSERT INTO histopathology_results (consultation_id, diagnosis, malignant, reported_on, note,
                                                   entered_by, entered_role, supersedes, correction_reason)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *""",
            consultation_id,
            entry.diagnosis,
            entry.malignant,
            entry.reported_on,
            entry.note,
            ctx.actor.user_id,
            ctx.actor.role,
            entry.supersedes,
            entry.correction_reason,
        )
        action = "outcome.histopathology.correct" if entry.supersedes else "outcome.histopathology.enter"
        await ctx.record(
            conn,
            action,
            "consultation",
            consultation_id,
            {
                "result_id": str(row["id"]),
                "diagnosis": entry.diagnosis,
                "malignant": entry.malignant,
                "supersedes": str(entry.supersedes) if entry.supersedes else None,
            },
        )
        return row


async def awaiting_histopathology(
    conn: asyncpg.Connection, doctor_id: uuid.UUID | None, limit: int
) -> list[asyncpg.Record]:
    """Resolved cases with a biopsy and no result yet, oldest first: one doctor's, or everyone's (None)."""
    return await conn.fetch(
        """SELECT c.id, c.doctor_id, c.body_site, c.closed_at, d.working_diagnosis, d.biopsy_taken
             FROM consultation_diagnoses d JOIN consultations c ON c.id = d.consultation_id
            WHERE d.biopsy_taken AND c.state = 'resolved' AND ($1::uuid IS NULL OR c.doctor_id = $1)
              AND NOT EXISTS (SELECT 1 FROM histopathology_results h WHERE h.consultation_id = c.id)
            ORDER BY c.closed_at, c.id LIMIT $2""",
        doctor_id,
        limit,
    )


async def confirmed_case_scores(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """One row per confirmed case, model version and photo kind: the score, band and what the case was."""
    return await conn.fetch(
        f"""SELECT c.id AS consultation_id, h.malignant, s.model_version, s.photo_kind, s.p_malignant, s.urgency
              FROM {_CONFIRMED} JOIN triage_case_scores s ON s.consultation_id = c.id
             ORDER BY c.closed_at, c.id"""
    )


async def confirmed_malignant_waits(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Confirmed malignant cases with the band they queued in, the model version that set it, and their wait."""
    return await conn.fetch(
        f"""SELECT c.id AS consultation_id, c.urgency AS queue_band, s.model_version,
                   extract(epoch FROM coalesce(c.assigned_at, c.closed_at) - c.queued_at) AS waited_seconds
              FROM {_CONFIRMED} {SCORE_JOIN} WHERE h.malignant ORDER BY c.closed_at DESC, c.id"""
    )


async def recent_malignant_bands(conn: asyncpg.Connection, window: int) -> list[str]:
    """The model's band for the last `window` confirmed malignant cases (newest resolved first), under the
    model version that triaged each of them live; a case no model scored counts as missed."""
    rows = await conn.fetch(
        f"""SELECT (SELECT v.urgency FROM triage_case_scores v
                     WHERE v.consultation_id = c.id AND v.model_version = s.model_version
                     ORDER BY {bands.rank_sql("v.urgency")} LIMIT 1) AS band
              FROM {_CONFIRMED} {SCORE_JOIN} WHERE h.malignant ORDER BY c.closed_at DESC, c.id LIMIT $1""",
        window,
    )
    return [row["band"] or "unscored" for row in rows]


async def confirmed_cases_for_export(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"""SELECT c.id AS consultation_id, c.body_site, h.diagnosis, h.malignant
              FROM {_CONFIRMED} ORDER BY c.closed_at, c.id"""
    )


async def record_export(
    conn: asyncpg.Connection, ctx: AuditContext, export_id: str, photos_per_case: dict[uuid.UUID, int]
) -> None:
    """One audit row per exported case: an export reads every one of their photos."""
    await audit.record_many(
        conn,
        [
            ctx.entry("outcome.export", "consultation", consultation_id, {"export_id": export_id, "photos": photos})
            for consultation_id, photos in photos_per_case.items()
        ],
    )
