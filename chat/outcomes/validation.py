"""Checking the fields of working diagnoses and histopathology results (shared by REST and Socket.IO)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from store.errors import unprocessable
from store.payloads import get_bool, get_choice, get_str, get_uuid

# The classifier's seven classes (jax_models.data.CLASS_NAMES) plus squamous cell carcinoma and "other".
FINDINGS = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc", "scc", "other")
WORKING_DIAGNOSES = (*FINDINGS, "unsure")
# The model card's grouping: these are malignant, the other named classes benign; "other" is stated.
MALIGNANT_FINDINGS = frozenset({"akiec", "bcc", "mel", "scc"})


@dataclass(frozen=True)
class WorkingDiagnosis:
    diagnosis: str
    biopsy_taken: bool


@dataclass(frozen=True)
class HistopathologyEntry:
    diagnosis: str
    malignant: bool
    reported_on: date
    note: str
    supersedes: uuid.UUID | None
    correction_reason: str | None


def working_diagnosis(payload: dict[str, Any]) -> WorkingDiagnosis | None:
    """The resolve payload's `diagnosis` and `biopsy_taken`; None when the client sent neither."""
    if "diagnosis" not in payload and "biopsy_taken" not in payload:
        return None
    return WorkingDiagnosis(get_choice(payload, "diagnosis", WORKING_DIAGNOSES), get_bool(payload, "biopsy_taken"))


def _report_date(payload: dict[str, Any], today: date) -> date:
    raw = get_str(payload, "reported_on", max_len=10)
    try:
        reported_on = date.fromisoformat(raw)
    except ValueError:
        raise unprocessable("invalid_field", "'reported_on' must be a date, YYYY-MM-DD.", field="reported_on") from None
    if reported_on > today:
        raise unprocessable("invalid_field", "'reported_on' cannot be in the future.", field="reported_on")
    return reported_on


def _malignancy(payload: dict[str, Any], diagnosis: str) -> bool:
    if diagnosis == "other":
        return get_bool(payload, "malignant")
    implied = diagnosis in MALIGNANT_FINDINGS
    if "malignant" in payload and get_bool(payload, "malignant") != implied:
        raise unprocessable(
            "invalid_field",
            f"'{diagnosis}' is {'malignant' if implied else 'benign'} by definition; "
            "leave 'malignant' out or use diagnosis 'other'.",
            field="malignant",
        )
    return implied


def histopathology(payload: dict[str, Any], today: date | None = None) -> HistopathologyEntry:
    today = today or datetime.now(UTC).date()
    diagnosis = get_choice(payload, "diagnosis", FINDINGS)
    supersedes = get_uuid(payload, "supersedes", required=False)
    reason = get_str(payload, "correction_reason", required=False, min_len=1, max_len=1000)
    if (supersedes is None) != (reason is None):
        raise unprocessable(
            "invalid_field",
            "A correction names the result it replaces ('supersedes') and why "
            "('correction_reason'); a first result has neither.",
            field="correction_reason" if reason is None else "supersedes",
        )
    note = get_str(payload, "note", required=False, max_len=4000, default="")
    for name, text in (("note", note), ("correction_reason", reason or "")):
        if any(ord(c) < 32 and c not in "\n\t" for c in text):
            raise unprocessable("invalid_field", f"'{name}' must be plain text (no control characters).", field=name)
    return HistopathologyEntry(
        diagnosis, _malignancy(payload, diagnosis), _report_date(payload, today), note, supersedes, reason
    )
