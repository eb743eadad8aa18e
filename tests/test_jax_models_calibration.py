"""jax_models.metrics and calibration: AUC, operating points, temperature scaling."""

import numpy as np
import pytest

from jax_models import evaluation, metrics

MALIGNANT = [0, 1, 4]


def test_auc_matches_pair_counting():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.normal(size=200) + y, 1)  # with ties
    pos, neg = s[y == 1], s[y == 0]
    pairs = (pos[:, None] > neg[None]).mean() + 0.5 * (pos[:, None] == neg[None]).mean()
    assert metrics.roc_auc(y, s) == pytest.approx(pairs)


def test_bootstrap_interval_by_group_contains_the_estimate():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    s = rng.normal(size=300) + y
    groups = np.arange(300) // 2
    r = metrics.bootstrap_auc(y, s, groups, n_boot=200)
    assert r['ci95'][0] < r['auc'] < r['ci95'][1]


def test_operating_points():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 500)
    s = rng.normal(size=500) + 1.5 * y
    t = metrics.threshold_for_sensitivity(y, s, 0.95)
    assert ((s >= t)[y == 1]).mean() >= 0.95
    assert ((s >= t + 1e-9)[y == 1]).mean() < 0.95  # the highest such threshold
    p = metrics.specificity_at_sensitivity(y, s, 0.95)
    assert p['sensitivity'] >= 0.95
    q = metrics.sensitivity_at_specificity(y, s, 0.9)
    assert q['specificity'] >= 0.9


def overconfident_logits(n, seed):
    """Labels drawn from softmax(z), logits reported as 3 z: an overconfident model."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 7)) * 1.2 + np.log([0.03, 0.05, 0.11, 0.01, 0.11, 0.67, 0.02])
    p = metrics.softmax(z)
    labels = np.array([rng.choice(7, p=row) for row in p])
    return 3.0 * z, labels


@pytest.mark.parametrize('objective', ['multiclass', 'malignant'])
def test_temperature_scaling_lowers_ece_on_held_data(objective):
    fit_logits, fit_labels = overconfident_logits(3000, 0)
    held_logits, held_labels = overconfident_logits(3000, 1)
    positive = MALIGNANT if objective == 'malignant' else None
    t = metrics.fit_temperature(fit_logits, fit_labels, positive)
    assert 2.0 < t < 4.5
    y = np.isin(held_labels, MALIGNANT)
    before = metrics.binary_ece(y, metrics.softmax(held_logits)[:, MALIGNANT].sum(1))
    after = metrics.binary_ece(y, metrics.softmax(held_logits / t)[:, MALIGNANT].sum(1))
    assert after < before / 2 and after < 0.05
    assert metrics.top_label_ece(held_labels, metrics.softmax(held_logits / t)) < metrics.top_label_ece(
        held_labels, metrics.softmax(held_logits)
    )


def test_report_has_every_figure():
    logits, labels = overconfident_logits(400, 3)
    mal = np.isin(labels, MALIGNANT).astype(int)
    names = ['akiec', 'bcc', 'bkl', 'df', 'mel', 'nv', 'vasc']
    r = evaluation.report(
        labels,
        mal,
        np.arange(400),
        logits,
        np.zeros(7),
        3.0,
        names,
        ['akiec', 'bcc', 'mel'],
        {'urgent': 0.3, 'soon': 0.1},
        n_boot=50,
    )
    for key in (
        'auc_malignant',
        'sensitivity_at_specificity_80',
        'sensitivity_at_specificity_90',
        'specificity_at_sensitivity_95',
        'ece_malignant_before',
        'ece_malignant_after',
        'balanced_accuracy',
        'confusion_matrix',
        'operating_points',
    ):
        assert key in r
    assert np.array(r['confusion_matrix']).sum() == 400
    assert r['ece_malignant_after'] < r['ece_malignant_before']
