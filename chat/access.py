"""Who may do what to a consultation: the one place the ownership rules live.

Actions:
- `read`: the full consultation and its chat history — the patient, the assigned doctor.
- `chat`: post messages, typing, read receipts — the patient, the assigned doctor.
- `summary`: the queue summary and photo thumbnails — also any approved doctor while it waits.
- `upload`: add photos — the patient.
- `cancel`, `respond` (answer an appointment) — the patient.
- `resolve`, `transfer`, `appoint` — the assigned doctor.
Taking a waiting case is not an action here: any approved doctor may try, and the take
itself decides under the case's row lock (404 no such case, 409 `already_taken` when
another doctor got it first, 409 `wrong_state` when it is cancelled or already yours).

A caller who may not know the consultation exists gets 404 (another patient, a
doctor for a case neither waiting nor theirs); one who may know it but not do the
action gets 403 (admins: no clinical reads). A doctor an admin has not approved yet
gets 403 `doctor_not_approved` before anything is looked up.
"""

from __future__ import annotations

import uuid

import asyncpg

from auth.authz import refuse_unapproved_doctor
from auth.principal import Principal
from chat.store import consultations
from store.errors import forbidden, not_found

PATIENT_ACTIONS = frozenset({"read", "chat", "summary", "upload", "cancel", "respond"})
ASSIGNED_DOCTOR_ACTIONS = frozenset({"read", "chat", "summary", "resolve", "transfer", "appoint"})
QUEUE_DOCTOR_ACTIONS = frozenset({"summary"})
ACTIONS = PATIENT_ACTIONS | ASSIGNED_DOCTOR_ACTIONS | QUEUE_DOCTOR_ACTIONS


def _unknown() -> Exception:
    return not_found("consultation_not_found", "No such consultation.")


def _not_allowed(action: str) -> Exception:
    return forbidden("forbidden", f"You may not {action} this consultation.")


async def authorize_consultation(
    conn: asyncpg.Connection, principal: Principal, consultation_id: uuid.UUID, *, action: str
) -> asyncpg.Record:
    """The consultation row if `principal` may do `action` to it; else DomainError 404 or 403 (see above)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown consultation action {action!r}")
    refuse_unapproved_doctor(principal)
    row = await consultations.get_consultation(conn, consultation_id)
    if row is None:
        raise _unknown()
    return _check_access(row, principal, action)


def _check_access(row: asyncpg.Record, principal: Principal, action: str) -> asyncpg.Record:
    if principal.role == "patient":
        if row["patient_id"] != principal.user_id:
            raise _unknown()
        if action not in PATIENT_ACTIONS:
            raise _not_allowed(action)
        return row
    if principal.role == "doctor":
        if row["doctor_id"] == principal.user_id:
            if action not in ASSIGNED_DOCTOR_ACTIONS:
                raise _not_allowed(action)
            return row
        if row["state"] == "waiting":
            if action not in QUEUE_DOCTOR_ACTIONS:
                raise _not_allowed(action)
            return row
        raise _unknown()
    raise _not_allowed(action)


# The role checks of use cases that do not start from one consultation (opening one, the queue, answering
# an appointment): the rules above need the consultation's row.


def require_patient(principal: Principal) -> None:
    if principal.role != "patient":
        raise forbidden("forbidden_role", "Only a patient can do this.")


def require_clinician(principal: Principal) -> None:
    if principal.role != "doctor":
        raise forbidden("forbidden_role", "Only a doctor can do this.")
    refuse_unapproved_doctor(principal)
