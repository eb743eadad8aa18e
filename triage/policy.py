"""Which photo speaks for a consultation, and what the patient is told while there is no decision yet.

A photo's band comes from the checkpoint's thresholds (jax_models/bands.py, e.g. {"urgent": 0.3, "soon": 0.1});
a higher threshold is a more severe band, and any score under every threshold is "routine". Photos whose
score passed the photo gate speak first: the most severe band among them wins, then the highest
score. Only when no photo passed does the riskiest untrusted one speak, marked untrusted. How the
photo's band combines with the patient's checklist is triage/urgency_policy.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from jax_models.bands import Bands
from triage import bands as triage_bands
from triage.photo_gate import GateVerdict

SCREENING_DISCLAIMER = "This is a screening aid, not a diagnosis. A doctor will review your photos."
_AWAITING_GUIDANCE = "Your photos have been received and are being checked. A doctor will review them."
_FAILED_GUIDANCE = "We could not check your photos automatically. They stay in the queue and a doctor will review them."


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


def deciding_photo(scores: Sequence[PhotoScore], bands: Bands) -> PhotoScore:
    """The highest-risk trusted photo (most severe band, then highest probability of malignancy);
    the highest-risk untrusted one when none is trusted. A band `bands` does not know ranks as the
    most severe (jax_models/bands.py): never hide an unexpected signal."""
    if not scores:
        raise ValueError("a consultation with no scored photo has no deciding photo")
    return min(scores, key=lambda s: (not s.trusted, bands.rank(s.urgency), -s.p_malignant))


def patient_guidance(urgency: str | None, *, failed: bool = False) -> str:
    """Plain words for the patient; never a number or a diagnosis."""
    if urgency is None:
        return _FAILED_GUIDANCE if failed else _AWAITING_GUIDANCE
    # A band the server does not know is read as the most severe, as everywhere (jax_models/bands.py).
    return triage_bands.WORDS.get(urgency, triage_bands.WORDS[triage_bands.NAMES[0]]).guidance
