"""The score-to-urgency policy: which photo speaks for a consultation, and what the patient is told.

Bands come from the checkpoint's thresholds (e.g. {"urgent": 0.3, "soon": 0.1}); a higher
threshold is a more severe band, and any score under every threshold is "routine". The
most severe band among a consultation's photos wins, then the highest score within it.
"""
from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

ROUTINE_BAND = "routine"
SCREENING_DISCLAIMER = "This is a screening aid, not a diagnosis. A doctor will review your photos."

_PATIENT_GUIDANCE = {
    "urgent": "Your photos have been marked for priority review. A doctor will look at them first. "
              "If the spot bleeds, grows quickly or you feel unwell, seek care in person today.",
    "soon": "Your photos will be reviewed soon. A doctor will look at them ahead of routine cases.",
    "routine": "Your photos are in the queue for a routine review. A doctor will look at them and reply here.",
}
_AWAITING_GUIDANCE = "Your photos have been received and are being checked. A doctor will review them."
_FAILED_GUIDANCE = ("We could not check your photos automatically. They stay in the queue and a doctor "
                    "will review them.")


@dataclass(frozen=True)
class PhotoScore:
    photo_id: uuid.UUID
    urgency: str
    p_malignant: float


@dataclass(frozen=True)
class ConsultationTriage:
    """What the queue needs from triage: the deciding photo's band and score under one model version."""
    consultation_id: uuid.UUID
    urgency: str
    p_malignant: float
    model_version: str
    photo_id: uuid.UUID
    scored_photos: int


def band_severity(thresholds: Mapping[str, float]) -> list[str]:
    """Bands from most to least severe: thresholds in descending order, then routine."""
    ordered = sorted(thresholds, key=lambda band: thresholds[band], reverse=True)
    return [band for band in ordered if band != ROUTINE_BAND] + [ROUTINE_BAND]


def _rank(band: str, severity: Sequence[str]) -> int:
    # A band the policy does not know ranks as the most severe: never hide an unexpected signal.
    return severity.index(band) if band in severity else -1


def deciding_photo(scores: Sequence[PhotoScore], severity: Sequence[str]) -> PhotoScore:
    """The highest-risk photo: the most severe band, then the highest probability of malignancy."""
    if not scores:
        raise ValueError("a consultation with no scored photo has no deciding photo")
    return min(scores, key=lambda s: (_rank(s.urgency, severity), -s.p_malignant))


def patient_guidance(urgency: str | None, *, failed: bool = False) -> str:
    """Plain words for the patient; never a number or a diagnosis."""
    if urgency is None:
        return _FAILED_GUIDANCE if failed else _AWAITING_GUIDANCE
    return _PATIENT_GUIDANCE.get(urgency, _PATIENT_GUIDANCE["soon"])
