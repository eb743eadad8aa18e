"""Checking the fields of consultation, message and appointment payloads (shared by REST and Socket.IO)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from chat import contract
from chat.store.appointments import SlotRequest
from store.errors import unprocessable
from store.payloads import (
    get_bool,
    get_choice,
    get_int,
    get_list,
    get_str,
    get_uuid,
    parse_timestamp,
    require_object,
)
from triage.checklist import CHECKLIST

BODY_SITES = (
    "scalp",
    "face",
    "ear",
    "neck",
    "chest",
    "back",
    "abdomen",
    "arm",
    "hand",
    "leg",
    "foot",
    "genital",
    "other",
)
# The weighted 7-point checklist's items (triage/checklist.py): each a yes/no answer.
SYMPTOM_FLAGS = tuple(item.key for item in CHECKLIST)
DURATIONS = ("days", "weeks", "months", "years")
OUTCOMES = ("reassure", "monitor", "in_person_visit", "urgent_referral")
STATES = ("waiting", "active", "resolved", "cancelled")
AVAILABILITIES = ("available", "away")
APPOINTMENT_KINDS = ("video", "in_person")
MAX_PAGE = 200

_CLIENT_MSG_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Plain text: any character but the C0/C1 controls, except newline and tab.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class NewConsultation:
    description: str
    body_site: str
    symptoms: dict[str, Any]


def event_payload(event: str, data: tuple[Any, ...], max_message_chars: int) -> dict[str, Any]:
    """A Socket.IO event's payload, checked against its schema in chat/asyncapi.yaml (the contract).

    The handlers then only convert fields and apply what a schema cannot say (a slot in
    the future, a token of the same user).
    """
    return contract.check_event(event, data[0] if data else {}, max_message_chars)


def new_consultation(payload: Any) -> NewConsultation:
    payload = require_object(payload)
    description = get_str(payload, "description", min_len=1, max_len=2000)
    body_site = get_choice(payload, "body_site", BODY_SITES)
    symptoms_raw = payload.get("symptoms")
    if symptoms_raw is None:
        raise unprocessable("missing_field", "'symptoms' is required.", field="symptoms")
    if not isinstance(symptoms_raw, dict):
        raise unprocessable("invalid_field", "'symptoms' must be an object.", field="symptoms")
    symptoms: dict[str, Any] = {flag: get_bool(symptoms_raw, flag) for flag in SYMPTOM_FLAGS}
    symptoms["duration"] = get_choice(symptoms_raw, "duration", DURATIONS)
    return NewConsultation(_plain_text(description, "description"), body_site, symptoms)


def _plain_text(text: str, name: str) -> str:
    if _CONTROL.search(text):
        raise unprocessable("invalid_field", f"'{name}' must be plain text (no control characters).", field=name)
    return text


def message_fields(payload: dict[str, Any], max_chars: int) -> tuple[str, str]:
    client_msg_id = get_str(payload, "client_msg_id", max_len=64)
    if not _CLIENT_MSG_ID.match(client_msg_id):
        raise unprocessable(
            "invalid_field", "'client_msg_id' must be 1 to 64 characters of A-Z a-z 0-9 _ -.", field="client_msg_id"
        )
    body = get_str(payload, "body", min_len=1, max_len=max_chars)
    if not body.strip():
        raise unprocessable("invalid_field", "'body' must not be blank.", field="body")
    return client_msg_id, _plain_text(body, "body")


def resolution(payload: dict[str, Any]) -> tuple[str, str]:
    outcome = get_choice(payload, "outcome", OUTCOMES)
    note = get_str(payload, "note", max_len=4000, required=False, default="")
    return outcome, _plain_text(note, "note")


def transfer(payload: dict[str, Any]) -> tuple[str, uuid.UUID | None]:
    reason = get_str(payload, "reason", min_len=1, max_len=1000)
    return _plain_text(reason, "reason"), get_uuid(payload, "to_doctor_id", required=False)


def optional_reason(payload: dict[str, Any]) -> str | None:
    reason = get_str(payload, "reason", required=False, max_len=1000)
    return _plain_text(reason, "reason") if reason is not None else None


def slots(payload: dict[str, Any], now: datetime | None = None) -> list[SlotRequest]:
    now = now or datetime.now(UTC)
    items = get_list(payload, "slots", max_items=5)
    if not items:
        raise unprocessable("invalid_field", "'slots' must hold 1 to 5 slots.", field="slots")
    parsed = []
    for item in items:
        if not isinstance(item, dict):
            raise unprocessable("invalid_field", "Each slot must be an object.", field="slots")
        starts_at = parse_timestamp(get_str(item, "starts_at", max_len=64), "starts_at")
        if starts_at <= now:
            raise unprocessable("invalid_field", "A slot must start in the future.", field="starts_at")
        if starts_at > now + timedelta(days=366):
            raise unprocessable("invalid_field", "A slot must start within a year.", field="starts_at")
        parsed.append(
            SlotRequest(
                starts_at=starts_at,
                minutes=get_int(item, "minutes", minimum=5, maximum=240, required=False, default=20),
                kind=get_choice(item, "kind", APPOINTMENT_KINDS),
                location=_plain_text(get_str(item, "location", min_len=1, max_len=500), "location"),
            )
        )
    if len({s.starts_at for s in parsed}) != len(parsed):
        raise unprocessable("invalid_field", "Two slots start at the same time.", field="slots")
    return parsed


def page_limit(payload: dict[str, Any], default: int = 50) -> int:
    return get_int(payload, "limit", required=False, minimum=1, maximum=MAX_PAGE, default=default)
