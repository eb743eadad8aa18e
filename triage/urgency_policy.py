"""One urgency policy for a waiting case, and why: the checklist sets the floor, a trusted photo score may raise it.

    band = the checklist band, raised to the image band when the image score is trusted (photo gate);
           an untrusted score changes nothing, and never takes away a band a trusted score gave before.

The table in docs/model-card.md ("The urgency policy") is this function over every combination;
tests/test_triage_urgency_policy.py checks each row. The same decision is explained to the doctor
(short lines beside the score) and to the patient (plain words, never a number or a diagnosis).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from triage import bands, checklist
from triage.bands import more_severe
from triage.photo_gate import VALIDATED_KINDS, GateVerdict, summary


def effective_band(checklist_band: str, image_band: str | None, trusted: bool, previous_band: str | None = None) -> str:
    """The case's band. `previous_band` is the band it holds now: an untrusted score keeps it."""
    if image_band is not None and trusted:
        return more_severe(checklist_band, image_band)
    if previous_band is not None:
        return more_severe(checklist_band, previous_band)
    return checklist_band


@dataclass(frozen=True)
class CaseTriage:
    """What a consultation holds for the policy."""

    band: str
    checklist: checklist.ChecklistResult
    image_band: str | None
    p_malignant: float | None
    verdict: GateVerdict | None


def doctor_reasons(case: CaseTriage) -> list[str]:
    """Short lines for the console: "checklist 5: size, colour, oozing", "photo score 0.42, dermoscopic, in range"."""
    lines = [f"{checklist.summary_for_doctor(case.checklist)} → {case.checklist.band}"]
    if case.p_malignant is None or case.verdict is None:
        lines.append("photo score: awaiting")
    elif case.verdict.trusted:
        lines.append(f"photo score {case.p_malignant:.2f} ({case.image_band}), {summary(case.verdict)}")
    else:
        lines.append(f"photo score {case.p_malignant:.2f} {summary(case.verdict)}")
    if case.band != case.checklist.band:
        raised_by = "the photo score" if case.verdict is not None and case.verdict.trusted else "an earlier photo score"
        lines.append(f"band {case.band}: raised by {raised_by}")
    return lines


def _untrusted_in_plain_words(verdict: GateVerdict) -> str:
    if verdict.quality_problems:
        return "the photo was " + " and ".join(
            p.replace("_", " ").replace("lesion", "spot") for p in verdict.quality_problems
        )
    if verdict.kind not in VALIDATED_KINDS:
        return "it works only on photos taken through a dermatoscope"
    return "the photo did not look like the photos it was trained on"


def patient_words(case: CaseTriage) -> str:
    """The same decision in plain words: what set the order, and whether the photo check was used."""
    if case.band == case.checklist.band or case.verdict is None or not case.verdict.trusted:
        why = "Your answers about the spot set your place in the queue."
    else:
        why = "The automatic check of your photos moved your case up the queue."
    if case.verdict is not None and not case.verdict.trusted:
        why += (
            f" The automatic photo check was not used ({_untrusted_in_plain_words(case.verdict)}); "
            "the doctor will look at your photos themselves."
        )
    words = f"{why} {bands.WORDS[case.band].queue_place}"
    if bands.rank(case.band) == 0:
        words += f" {bands.SEEK_CARE}"
    return words


def case_from_consultation(row: Mapping[str, Any]) -> CaseTriage:
    """The policy's view of a consultation row (chat's consultations table, read-only here)."""
    gate = row.get("gate")
    verdict = None
    if gate is not None:
        verdict = GateVerdict(
            kind=gate.get("kind") or "unknown",
            quality_problems=None if gate.get("quality_problems") is None else tuple(gate["quality_problems"]),
            in_distribution=gate.get("in_distribution"),
            ood_score=gate.get("ood_score"),
        )
    scored = row.get("scored_at") is not None and row.get("p_malignant") is not None
    return CaseTriage(
        band=row["urgency"],
        checklist=checklist.evaluate(row.get("symptoms") or {}),
        image_band=row.get("image_band") if scored else None,
        p_malignant=row.get("p_malignant") if scored else None,
        verdict=verdict if scored else None,
    )


def explanation(row: Mapping[str, Any]) -> dict[str, Any]:
    """Why a consultation has its band: lines for doctors, and the same decision in plain words."""
    case = case_from_consultation(row)
    return {
        "band": case.band,
        "checklist_score": case.checklist.score,
        "checklist_band": case.checklist.band,
        "reasons": doctor_reasons(case),
        "patient_words": patient_words(case),
    }
