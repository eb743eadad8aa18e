"""Rows as the JSON objects of docs/realtime-api.md (Consultation, QueueEntry, Message, Appointment, Doctor)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import asyncpg

from triage import bands, urgency_policy


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _id(value: Any) -> str | None:
    return str(value) if value is not None else None


def consultation(row: asyncpg.Record, queue: dict | None = None) -> dict[str, Any]:
    body = {
        "id": str(row["id"]),
        "state": row["state"],
        "patient_id": str(row["patient_id"]),
        "doctor_id": _id(row["doctor_id"]),
        "description": row["description"],
        "body_site": row["body_site"],
        "symptoms": row["symptoms"],
        "urgency": row["urgency"],
        "p_malignant": row["p_malignant"],
        "model_version": row["model_version"],
        "awaiting_score": row["scored_at"] is None,
        **_triage_fields(row),
        "created_at": _time(row["created_at"]),
        "queued_at": _time(row["queued_at"]),
        "assigned_at": _time(row["assigned_at"]),
        "closed_at": _time(row["closed_at"]),
        "outcome": row["outcome"],
        "outcome_note": row["outcome_note"],
        "cancel_reason": row["cancel_reason"],
        "last_seq": row["last_seq"],
    }
    if row["state"] == "waiting" and queue is not None:
        body["queue"] = queue
    return body


def _triage_fields(row: asyncpg.Record) -> dict[str, Any]:
    """The urgency policy's inputs and its explanation (docs/realtime-api.md, "Why a case has its band")."""
    return {
        "checklist_score": row["checklist_score"],
        "checklist_band": row["checklist_band"],
        "image_band": row["image_band"],
        "score_trusted": row["score_trusted"],
        "gate": row["gate"],
        "explanation": urgency_policy.explanation(row),
    }


def queue_entry(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "consultation_id": str(row["id"]),
        "position": row["position"],
        "urgency": row["urgency"],
        "effective_band": bands.band_at_rank(row["effective_rank"]),
        "p_malignant": row["p_malignant"],
        "awaiting_score": row["scored_at"] is None,
        **_triage_fields(row),
        "body_site": row["body_site"],
        "symptoms": row["symptoms"],
        "description": row["description"],
        "queued_at": _time(row["queued_at"]),
        "waiting_seconds": max(row["waiting_seconds"], 0),
    }


def queue_position(position: int, online_doctors: int, mean_seconds: float) -> dict[str, int]:
    rounds = math.ceil(position / max(1, online_doctors))
    return {"position": position, "estimated_wait_seconds": int(rounds * mean_seconds)}


def message(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "consultation_id": str(row["consultation_id"]),
        "seq": row["seq"],
        "sender_id": str(row["sender_id"]),
        "sender_role": row["sender_role"],
        "client_msg_id": row["client_msg_id"],
        "body": row["body"],
        "sent_at": _time(row["sent_at"]),
    }


def appointment(row: asyncpg.Record, slots: list[asyncpg.Record]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "consultation_id": str(row["consultation_id"]),
        "doctor_id": str(row["doctor_id"]),
        "patient_id": str(row["patient_id"]),
        "state": row["state"],
        "slots": [
            {
                "id": str(s["id"]),
                "starts_at": _time(s["starts_at"]),
                "minutes": s["minutes"],
                "kind": s["kind"],
                "location": s["location"],
            }
            for s in slots
        ],
        "confirmed_slot_id": _id(row["confirmed_slot_id"]),
        "decline_reason": row["decline_reason"],
        "created_at": _time(row["created_at"]),
        "responded_at": _time(row["responded_at"]),
    }


def doctor(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "doctor_id": str(row["doctor_id"]),
        "availability": row["availability"],
        "online": row["online"],
        "capacity": row["capacity"],
        "active": row["active"],
    }
