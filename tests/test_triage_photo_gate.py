"""The photo gate on shipped fixtures of each kind, its fitted quality limits, and the out-of-distribution
statistics that travel with a checkpoint."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jax_models import checkpoint, ood
from jax_models.serving import load_classifier
from triage import gate_fit, photo_gate, photo_quality
from triage.images import normalise_photo

FIXTURES = Path(__file__).parent / "fixtures"
DERMOSCOPY = sorted((FIXTURES / "ham10000" / "images").glob("*.jpg"))
GATE = FIXTURES / "gate"


@pytest.fixture(scope="module")
def classifier():
    return load_classifier()


def quality_of(path: Path) -> photo_gate.QualityReport:
    """Measured as intake measures it: on the normalised photo's thumbnail."""
    photo = normalise_photo(path.read_bytes(), max_pixels=10**8, min_side=128)
    return photo_gate.check_quality(Image.open(io.BytesIO(photo.thumbnail)))


@pytest.mark.parametrize("path", DERMOSCOPY, ids=lambda p: p.stem)
def test_good_dermoscopy_passes_the_quality_check(path):
    assert quality_of(path).problems == ()


@pytest.mark.parametrize("problem", ["blurred", "too_dark", "too_bright", "lesion_too_small"])
def test_each_bad_photo_is_flagged_for_its_own_problem_with_advice(problem):
    report = quality_of(GATE / f"{problem}.jpg")
    assert problem in report.problems
    assert photo_quality.PROBLEMS[problem].split(" — ")[1], "every problem says what to do about it"


def test_a_black_and_white_photo_is_flagged_as_colourless():
    assert "no_colour" in quality_of(GATE / "non_lesion_camera.jpg").problems


def test_the_shipped_models_statistics_are_its_own(classifier):
    metadata = checkpoint.read_metadata(checkpoint.SHIPPED_DIR)
    assert metadata["ood"]["weights_digest"] == ood.weights_digest(checkpoint.SHIPPED_DIR)
    assert classifier.ood is not None and classifier.ood.means.shape[1] == metadata["ood"]["feature_dim"]


def test_dermoscopy_is_in_range_and_grass_is_not(classifier):
    # 15 of the 17 fixtures lie inside the fitted range (the threshold lets 0.5 % of validation photos out).
    predictions = classifier.predict([Image.open(p) for p in DERMOSCOPY])
    assert sum(p.in_distribution for p in predictions) >= 14
    [grass] = classifier.predict([Image.open(GATE / "non_lesion_grass.jpg")])
    assert grass.in_distribution is False and grass.ood_score > classifier.ood.threshold


def test_colourfulness_is_the_mean_saturation_of_the_lit_pixels():
    """The measure written out in floating point, on grey, coloured and dark squares: the same number."""
    rng = np.random.default_rng(0)
    for case in range(30):
        pixels = rng.integers(0, 256, (photo_quality.ANALYSIS_SIDE, photo_quality.ANALYSIS_SIDE, 3), np.uint8)
        if case % 3 == 0:
            pixels[..., 1:] = pixels[..., :1]
        lit = rng.random(pixels.shape[:2]) < (0.0 if case % 10 == 9 else 0.7)
        rgb = pixels[lit].astype(np.float64)
        top = rgb.max(axis=1, initial=0.0)
        expected = float(((top - rgb.min(axis=1, initial=255.0)) / np.maximum(top, 1.0)).mean()) if lit.any() else 0.0
        assert photo_quality.colourfulness(Image.fromarray(pixels), lit) == expected
        assert (expected == 0.0) == (case % 3 == 0 or not lit.any())


def test_verdict_fails_closed():
    good = photo_gate.GateVerdict("dermoscopic", (), True, 10.0)
    assert good.trusted and good.reasons == () and photo_gate.summary(good) == "dermoscopic, in range"
    for verdict, reason in [
        (photo_gate.GateVerdict("camera_close_up", (), True), "kind_not_validated"),
        (photo_gate.GateVerdict(photo_gate.kind_of(None), (), True), "kind_not_validated"),
        (photo_gate.GateVerdict("dermoscopic", None, True), "quality_unchecked"),
        (photo_gate.GateVerdict("dermoscopic", (), None), "ood_unavailable"),
        (photo_gate.GateVerdict("dermoscopic", (), False, 1e4), "out_of_distribution"),
        (photo_gate.GateVerdict("dermoscopic", ("blurred",), True), "blurred"),
    ]:
        assert not verdict.trusted and reason in verdict.reasons
        assert photo_gate.summary(verdict).startswith("not used: ")
    assert photo_gate.kind_of("dermoscopic") == "dermoscopic" and photo_gate.kind_of("close_up") == "camera_close_up"


def test_quality_limits_are_quantiles_of_the_training_photos(tmp_path):
    # The fitting command on the HAM10000 fixtures (all from HAM's train split): each limit is the
    # documented quantile of its measure, so a threshold is never a guess.
    out = tmp_path / "limits.json"
    result = gate_fit.fit_quality([FIXTURES / "ham10000"], out)
    measures = gate_fit.measure_paths(DERMOSCOPY)
    assert result["limits"]["sharpness_min"] == pytest.approx(
        np.quantile(measures["sharpness"], gate_fit.QUANTILE), abs=1e-4
    )
    assert result["limits"]["brightness_max"] == pytest.approx(
        np.quantile(measures["brightness"], 1 - gate_fit.QUANTILE), abs=1e-4
    )
    assert json.loads(out.read_text())["fitted_on"] == {"ham10000": len(DERMOSCOPY)}
    shipped = photo_quality.load_thresholds()
    assert set(shipped["limits"]) == set(result["limits"]) and shipped["quantile"] == gate_fit.QUANTILE


def test_statistics_fitted_on_other_weights_are_ignored(tmp_path, classifier):
    """Refit whenever the model changes: stale statistics switch the check off (and the gate fails closed)."""
    folder = tmp_path / "model"
    shutil.copytree(checkpoint.SHIPPED_DIR, folder, ignore=shutil.ignore_patterns("gan"))
    metadata = checkpoint.read_metadata(folder)
    assert ood.load(folder, metadata) is not None
    metadata["ood"]["method"] = "a method this code does not know"
    assert ood.load(folder, metadata) is None
    metadata["ood"]["weights_digest"] = "0" * 16
    assert ood.load(folder, metadata) is None
    del metadata["ood"]
    assert ood.load(folder, metadata) is None


def test_fit_puts_the_threshold_at_the_validation_quantile():
    rng = np.random.default_rng(0)
    # Three classes around distinct directions, all features positive like pooled ReLU6 activations.
    centres = 5.0 + 10.0 * np.eye(16)[:3]
    labels = rng.integers(0, 3, size=2000)
    train = centres[labels] + rng.normal(size=(2000, 16))
    val = centres[rng.integers(0, 3, size=1000)] + rng.normal(size=(1000, 16))
    stats, summary = ood.fit(train, labels, val)
    assert np.mean(stats.scores(val) <= stats.threshold) == pytest.approx(ood.VAL_PASS, abs=0.002)
    assert summary["feature_dim"] == 16 and summary["classes"] == 3
    # Features are compared by direction (scaled to unit length): a photo pointing elsewhere is out of range,
    # a brighter or darker copy of an in-range one (every feature scaled) is not.
    far = rng.normal(size=(100, 16)) + np.where(np.arange(16) < 8, 40.0, -40.0)
    assert np.all(stats.scores(far) > stats.threshold)
    np.testing.assert_allclose(stats.scores(val * 5.0), stats.scores(val))
    raw = ood.OodStatistics(stats.means, stats.precision, stats.threshold, unit_features=False)
    assert not np.allclose(raw.scores(val * 5.0), raw.scores(val))  # statistics fitted the old way: scored raw
