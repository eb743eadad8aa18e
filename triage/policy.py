"""Which photo speaks for a consultation, and what the patient is told while there is no decision yet.

A photo's band comes from the checkpoint's thresholds (e.g. {"urgent": 0.3, "soon": 0.1}); a higher
threshold is a more severe band, and any score under every threshold is "routine". Photos whose
score passed the photo gate speak first: the most severe band among them wins, then the highest
score. Only when no photo passed does the riskiest untrusted one speak, marked untrusted. How the
photo's band combines with the patient's checklist is triage/urgency_policy.py.
"""
from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from triage.photo_gate import GateVerdict

ROUTINE_BAND = "routine"
SCREENING_DISCLAIMER = "This is a screening aid, not a diagnosis. A doctor will review your photos."

_PATIENT_GUIDANCE = {
    "urgent": "Your case has been marked for priority review. A doctor will look at it first. "
              "If the spot bleeds, grows quickly or you feel unwell, seek care in person today.",
    "soon": "Your case will be reviewed soon. A doctor will look at it ahead of routine cases.",
    "routine": "Your case is in the queue for a routine review. A doctor will look at it and reply here.",
}
_AWAITING_GUIDANCE = "Your photos have been received and are being checked. A doctor will review them."
_FAILED_GUIDANCE = ("We could not check your photos automatically. They stay in the queue and a doctor "
                    "will review them.")


@dataclass(frozen=True)
class PhotoScore:
    photo_id: uuid.UUID
    urgency: str
    p_malignant: float
    verdict: GateVerdict | None = None

    @property
    def trusted(self) -> bool:
        return self.verdict is not None and self.verdict.trusted


@dataclass(frozen=True)
class ConsultationTriage:
    """What the queue needs from triage: the deciding photo's band and score under one model version."""
    consultation_id: uuid.UUID
    urgency: str
    p_malignant: float
    model_version: str
    photo_id: uuid.UUID
    scored_photos: int
    trusted: bool = False
    gate: dict[str, Any] | None = None


def band_severity(thresholds: Mapping[str, float]) -> list[str]:
    """Bands from most to least severe: thresholds in descending order, then routine."""
    ordered = sorted(thresholds, key=lambda band: thresholds[band], reverse=True)
    return [band for band in ordered if band != ROUTINE_BAND] + [ROUTINE_BAND]


def _rank(band: str, severity: Sequence[str]) -> int:
    # A band the policy does not know ranks as the most severe: never hide an unexpected signal.
    return severity.index(band) if band in severity else -1


def deciding_photo(scores: Sequence[PhotoScore], severity: Sequence[str]) -> PhotoScore:
    """The highest-risk trusted photo (most severe band, then highest probability of malignancy);
    the highest-risk untrusted one when none is trusted."""
    if not scores:
        raise ValueError("a consultation with no scored photo has no deciding photo")
    return min(scores, key=lambda s: (not s.trusted, _rank(s.urgency, severity), -s.p_malignant))


def patient_guidance(urgency: str | None, *, failed: bool = False) -> str:
    """Plain words for the patient; never a number or a diagnosis."""
    if urgency is None:
        return _FAILED_GUIDANCE if failed else _AWAITING_GUIDANCE
    return _PATIENT_GUIDANCE.get(urgency, _PATIENT_GUIDANCE["soon"])
