"""The weighted 7-point checklist and the urgency policy on their own: every row of both tables, and the
property that an untrusted score never lowers a band."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from triage import checklist, urgency_policy
from triage.photo_gate import GateVerdict

BANDS = ("urgent", "soon", "routine")

# NICE NG12's table, written out here rather than read from the code under test.
NICE_POINTS = {
    "size_changed": 2,
    "shape_irregular": 2,
    "colour_irregular": 2,
    "diameter_7mm": 1,
    "inflamed": 1,
    "oozing": 1,
    "sensation_changed": 1,
}

TRUSTED = GateVerdict("dermoscopic", (), True, 12.0)
# Every way the gate can refuse a score.
UNTRUSTED = {
    "blurred": GateVerdict("dermoscopic", ("blurred",), True, 12.0),
    "too dark": GateVerdict("dermoscopic", ("too_dark",), True, 12.0),
    "lesion too small": GateVerdict("dermoscopic", ("lesion_too_small",), True, 12.0),
    "camera photo": GateVerdict("camera_close_up", (), True, 12.0),
    "kind not stated": GateVerdict("unknown", (), True, 12.0),
    "out of distribution": GateVerdict("dermoscopic", (), False, 9999.0),
    "no statistics for the model": GateVerdict("dermoscopic", (), None),
    "quality never measured": GateVerdict("dermoscopic", None, True, 12.0),
}

# checklist band x image band, trusted score -> the case's band (docs/model-card.md, "The urgency policy").
TRUSTED_TABLE = [
    ("routine", "routine", "routine"),
    ("routine", "soon", "soon"),
    ("routine", "urgent", "urgent"),
    ("soon", "routine", "soon"),
    ("soon", "soon", "soon"),
    ("soon", "urgent", "urgent"),
    ("urgent", "routine", "urgent"),
    ("urgent", "soon", "urgent"),
    ("urgent", "urgent", "urgent"),
]


def test_the_checklist_is_nice_ng12s_table():
    assert {item.key: item.points for item in checklist.CHECKLIST} == NICE_POINTS
    assert checklist.MAX_SCORE == 10 and checklist.URGENT_FROM == 3
    for item in checklist.CHECKLIST:
        # Plain words: a question a patient can answer, no clinical jargon in it.
        assert item.question.endswith("?") and "lesion" not in item.question.lower()
    assert "pencil" in checklist.ITEMS["diameter_7mm"].question


@pytest.mark.parametrize(
    "answers", [dict(zip(NICE_POINTS, bits, strict=True)) for bits in itertools.product([False, True], repeat=7)]
)
def test_every_combination_of_answers_scores_and_bands(answers):
    score = sum(NICE_POINTS[key] for key, yes in answers.items() if yes)
    result = checklist.evaluate(answers)
    assert result.score == score and result.not_asked == ()
    assert result.band == ("urgent" if score >= 3 else "soon" if score == 2 else "routine")


# Checklist 5: size and colour (2 each), oozing (1).
FIVE = {
    "size_changed": True,
    "shape_irregular": False,
    "colour_irregular": True,
    "diameter_7mm": False,
    "inflamed": False,
    "oozing": True,
    "sensation_changed": False,
}
NONE = dict.fromkeys(FIVE, False)


def test_items_never_asked_count_nothing_and_are_named():
    result = checklist.evaluate({"size_changed": True, "oozing": True, "sensation_changed": None})
    assert result.score == 3 and result.band == "urgent"
    assert set(result.not_asked) == {
        "shape_irregular",
        "colour_irregular",
        "diameter_7mm",
        "inflamed",
        "sensation_changed",
    }
    assert checklist.summary_for_doctor(checklist.evaluate(FIVE)) == "checklist 5: size, colour, oozing"


@pytest.mark.parametrize("checklist_band, image_band, expected", TRUSTED_TABLE)
def test_a_trusted_score_raises_the_checklist_band_never_lowers_it(checklist_band, image_band, expected):
    assert urgency_policy.effective_band(checklist_band, image_band, True) == expected
    # A trusted score replaces what an earlier score said, but never goes under the checklist.
    for previous in BANDS:
        assert urgency_policy.effective_band(checklist_band, image_band, True, previous) == expected


@pytest.mark.parametrize("reason", UNTRUSTED)
@pytest.mark.parametrize("checklist_band, image_band", list(itertools.product(BANDS, BANDS)))
def test_an_untrusted_score_changes_nothing(reason, checklist_band, image_band):
    verdict = UNTRUSTED[reason]
    assert not verdict.trusted and verdict.reasons
    assert urgency_policy.effective_band(checklist_band, image_band, verdict.trusted) == checklist_band
    for previous in BANDS:
        held = urgency_policy.more_severe(checklist_band, previous)
        assert urgency_policy.effective_band(checklist_band, image_band, verdict.trusted, previous) == held


@pytest.mark.parametrize("checklist_band", BANDS)
def test_awaiting_a_score_the_checklist_decides(checklist_band):
    assert urgency_policy.effective_band(checklist_band, None, False) == checklist_band


events = st.lists(st.tuples(st.sampled_from(BANDS), st.booleans()), max_size=12)


@given(checklist_band=st.sampled_from(BANDS), scores=events)
def test_property_an_untrusted_score_never_lowers_a_band(checklist_band, scores):
    band = checklist_band
    for image_band, trusted in scores:
        new = urgency_policy.effective_band(checklist_band, image_band, trusted, band)
        assert BANDS.index(new) <= BANDS.index(checklist_band), "never below the checklist"
        if not trusted:
            assert BANDS.index(new) <= BANDS.index(band), "an untrusted score moved a case down"
        band = new


def _row(symptoms, band, image_band=None, p=None, verdict=None):
    return {
        "symptoms": symptoms,
        "urgency": band,
        "image_band": image_band,
        "p_malignant": p,
        "scored_at": None if p is None else "now",
        "gate": None if verdict is None else verdict.as_dict(),
    }


def test_the_explanation_for_doctors_and_patients():
    trusted = urgency_policy.explanation(_row(NONE, "urgent", "urgent", 0.42, TRUSTED))
    assert trusted["reasons"][0] == "checklist 0 → routine"
    assert trusted["reasons"][1] == "photo score 0.42 (urgent), dermoscopic, in range"
    assert trusted["reasons"][2] == "band urgent: raised by the photo score"
    assert "automatic check of your photos moved your case up" in trusted["patient_words"]

    camera = urgency_policy.explanation(_row(FIVE, "urgent", "routine", 0.08, UNTRUSTED["camera photo"]))
    assert camera["reasons"][:2] == [
        "checklist 5: size, colour, oozing → urgent",
        "photo score 0.08 not used: camera photo",
    ]
    assert "answers about the spot set your place" in camera["patient_words"]
    assert "only on photos taken through a dermatoscope" in camera["patient_words"]

    blurred = urgency_policy.explanation(_row(NONE, "routine", "soon", 0.2, UNTRUSTED["blurred"]))
    assert blurred["reasons"][1] == "photo score 0.20 not used: blurred"
    assert "the photo was blurred" in blurred["patient_words"]

    waiting = urgency_policy.explanation(_row(NONE, "routine"))
    assert waiting["reasons"][1] == "photo score: awaiting"
    for words in (trusted, camera, blurred, waiting):
        assert not any(ch.isdigit() for ch in words["patient_words"]), "never a number for the patient"
