"""The score-to-urgency policy and the triage settings, on their own."""

from __future__ import annotations

import uuid

import pytest

from jax_models.bands import from_thresholds
from triage.config import TriageConfig
from triage.policy import (
    SCREENING_DISCLAIMER,
    PhotoScore,
    deciding_photo,
    patient_guidance,
)
from triage.views import triage_view

BANDS = from_thresholds({"urgent": 0.3, "soon": 0.1})


def score(urgency: str, p: float) -> PhotoScore:
    return PhotoScore(uuid.uuid4(), urgency, p)


def test_bands_ordered_by_threshold_then_routine():
    assert BANDS.names == ("urgent", "soon", "routine")
    assert from_thresholds({"soon": 0.1, "urgent": 0.3}).names == ("urgent", "soon", "routine")


def test_most_severe_band_wins_then_highest_score():
    routine_high, soon_low, soon_high = score("routine", 0.09), score("soon", 0.12), score("soon", 0.2)
    assert deciding_photo([routine_high, soon_low, soon_high], BANDS) is soon_high
    # A band decided by more than the probability (say, a rule on the predicted class) still outranks a score.
    urgent_by_rule = score("urgent", 0.05)
    assert deciding_photo([soon_high, urgent_by_rule], BANDS) is urgent_by_rule


def test_unknown_band_is_treated_as_most_severe():
    strange = score("emergency", 0.01)
    assert deciding_photo([score("urgent", 0.9), strange], BANDS) is strange


def test_no_scored_photo_has_no_deciding_photo():
    with pytest.raises(ValueError):
        deciding_photo([], BANDS)


def test_patient_words_never_hold_a_number():
    for urgency in ("urgent", "soon", "routine", None):
        words = patient_guidance(urgency)
        assert words and not any(ch.isdigit() for ch in words)
    assert "screening aid, not a diagnosis" in SCREENING_DISCLAIMER


def test_failed_guidance_only_when_nothing_is_pending():
    summary_none = triage_view(None, {"failed": 1, "pending": 1}, "patient")
    assert "could not check" not in summary_none["guidance"]
    assert "could not check" in triage_view(None, {"failed": 1}, "patient")["guidance"]


def test_config_from_env_and_batch_sizes():
    config = TriageConfig.from_env(
        {
            "SKINDOC_TRIAGE_MAX_BATCH": "24",
            "SKINDOC_TRIAGE_SALIENCY": "off",
            "SKINDOC_INPROCESS_WORKER": "true",
            "SKINDOC_TRIAGE_MODEL_DIR": "/models/v2",
        }
    )
    assert config.batch_sizes == (1, 2, 4, 8, 16, 24)
    assert config.saliency is False and config.inprocess_worker is True and str(config.model_dir) == "/models/v2"
    assert TriageConfig.from_env({}).batch_sizes == (1, 2, 4, 8, 16, 32)
    assert TriageConfig.from_env({"SKINDOC_TRIAGE_MAX_BATCH": "1"}).batch_sizes == (1,)


@pytest.mark.parametrize(
    "name, value",
    [("SKINDOC_TRIAGE_MAX_BATCH", "0"), ("SKINDOC_TRIAGE_MAX_PIXELS", "lots"), ("SKINDOC_TRIAGE_SALIENCY", "maybe")],
)
def test_config_refuses_bad_values(name, value):
    with pytest.raises(SystemExit, match=name):
        TriageConfig.from_env({name: value})
