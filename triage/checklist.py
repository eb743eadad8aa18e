"""The weighted 7-point checklist for a suspicious pigmented lesion, as NICE publishes it, and its bands.

Source: NICE guideline NG12, "Suspected cancer: recognition and referral" (2015, updated 2023),
recommendation 1.7.2 — "Refer people using a suspected cancer pathway referral for melanoma if they
have a suspicious pigmented skin lesion with a weighted 7-point checklist score of 3 or more."
The checklist itself (weights and features) is from MacKie's revised 7-point checklist as weighted
by Walter et al., Br J Gen Pract 2013;63:e345-53, and reproduced in NG12.

Each item is asked in plain words (the `question` column); an item that was never asked (a
consultation opened before the checklist existed) is None, counts 0 and is listed as not asked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class ChecklistItem:
    key: str
    points: int  # 2: major feature, 1: minor feature
    feature: str  # NICE's wording
    short: str  # the doctor's one-word label
    question: str  # what the patient is asked


# NICE NG12, weighted 7-point checklist: three major features (2 points), four minor (1 point).
CHECKLIST: tuple[ChecklistItem, ...] = (
    ChecklistItem("size_changed", 2, "change in size", "size", "Has it grown or got bigger recently?"),
    ChecklistItem(
        "shape_irregular",
        2,
        "irregular shape",
        "shape",
        "Is its edge uneven, ragged or blotchy rather than a smooth round or oval?",
    ),
    ChecklistItem(
        "colour_irregular",
        2,
        "irregular colour",
        "colour",
        "Does it have several colours or shades (brown, black, red, white, blue) rather than one?",
    ),
    ChecklistItem(
        "diameter_7mm",
        1,
        "largest diameter 7 mm or more",
        "7 mm+",
        "Is it wider than the end of a pencil (about 7 mm) at its widest?",
    ),
    ChecklistItem("inflamed", 1, "inflammation", "inflamed", "Is it, or the skin around it, red, swollen or inflamed?"),
    ChecklistItem("oozing", 1, "oozing", "oozing", "Has it oozed, bled or crusted over without being injured?"),
    ChecklistItem(
        "sensation_changed", 1, "change in sensation", "sensation", "Does it feel different: itchy, tender or painful?"
    ),
)
ITEMS = {item.key: item for item in CHECKLIST}
MAX_SCORE = sum(item.points for item in CHECKLIST)

# Bands from the score. 3 or more is NICE's threshold for the suspected cancer pathway: urgent.
# Below it NICE says nothing; we chose: 2 (one major feature, or two minor ones) is "soon", so a
# changing or irregular lesion is seen ahead of routine cases; 0 or 1 is "routine". A doctor still
# sees every case, and the photo score can only raise these bands.
URGENT_FROM = 3
SOON_FROM = 2


@dataclass(frozen=True)
class ChecklistResult:
    score: int
    band: str
    present: tuple[str, ...]  # keys answered yes
    not_asked: tuple[str, ...]  # keys with no answer


def band_for(score: int) -> str:
    if score >= URGENT_FROM:
        return "urgent"
    if score >= SOON_FROM:
        return "soon"
    return "routine"


def evaluate(answers: Mapping[str, bool | None]) -> ChecklistResult:
    """Score and band of a patient's answers (True, False, or None for not asked)."""
    present = tuple(item.key for item in CHECKLIST if answers.get(item.key) is True)
    not_asked = tuple(item.key for item in CHECKLIST if answers.get(item.key) is None)
    score = sum(ITEMS[key].points for key in present)
    return ChecklistResult(score, band_for(score), present, not_asked)


def summary_for_doctor(result: ChecklistResult) -> str:
    """ "checklist 5: size, colour, oozing" (and what was not asked)."""
    text = f"checklist {result.score}"
    if result.present:
        text += ": " + ", ".join(ITEMS[key].short for key in result.present)
    if result.not_asked:
        text += " (not asked: " + ", ".join(ITEMS[key].short for key in result.not_asked) + ")"
    return text
