"""How the triage model performs on confirmed cases: AUC with its interval, the urgent band's sensitivity and
specificity, calibration, and the check that recent sensitivity has not fallen below the model card's.

Plain functions over (score, band, malignant) per case; the caller (chat's outcomes) reads the cases from
PostgreSQL. Figures with no meaning on the data given (an AUC with one class) are None, never made up.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from jax_models import metrics
from triage import bands

# The most severe band (triage/bands.py): the one whose sensitivity the model card states.
URGENT_BAND = bands.NAMES[0]
RELIABILITY_BINS = 10
_BOOTSTRAP_BLOCK = 100
_Z95 = 1.959963984540054


@dataclass(frozen=True)
class ConfirmedCase:
    """One case's score under one model version, and what histopathology found."""

    case_id: str
    p_malignant: float
    band: str
    malignant: bool


def wilson_interval(successes: int, trials: int) -> list[float] | None:
    """95 % Wilson score interval of a proportion (sound for small counts and for 0 or 100 %)."""
    if trials == 0:
        return None
    p = successes / trials
    denominator = 1 + _Z95**2 / trials
    centre = (p + _Z95**2 / (2 * trials)) / denominator
    half = _Z95 * math.sqrt(p * (1 - p) / trials + _Z95**2 / (4 * trials**2)) / denominator
    return [max(0.0, centre - half), min(1.0, centre + half)]


def _proportion(successes: int, trials: int) -> dict:
    return {
        "value": successes / trials if trials else None,
        "successes": successes,
        "trials": trials,
        "ci95": wilson_interval(successes, trials),
    }


def _finite(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def bootstrap_aucs(y: np.ndarray, score: np.ndarray, n_boot: int, seed: int = 0) -> np.ndarray:
    """AUCs of `n_boot` resamples of the cases (with replacement), all at once.

    A resample is a count per case; the Mann-Whitney statistic of weighted cases needs, per distinct
    score, the benign weight below it and equal to it, so one sort serves every resample. This is
    what jax_models.metrics.bootstrap_auc computes with one case per group, without a Python loop
    per resample: a page refresh over thousands of cases stays well under a second.
    """
    n = len(y)
    rng = np.random.default_rng(seed)
    distinct, group = np.unique(score, return_inverse=True)
    order = np.argsort(group, kind="stable")
    starts = np.searchsorted(group[order], np.arange(len(distinct)))
    is_malignant = y[order]
    aucs = []
    # In blocks, so that thousands of cases never hold more than a few MB per array.
    for block in range(0, n_boot, _BOOTSTRAP_BLOCK):
        size = min(_BOOTSTRAP_BLOCK, n_boot - block)
        weights = rng.multinomial(n, np.full(n, 1 / n), size=size)[:, order].astype(np.float64)
        benign = np.add.reduceat(weights * ~is_malignant, starts, axis=1)
        malignant = np.add.reduceat(weights * is_malignant, starts, axis=1)
        benign_below = np.cumsum(benign, axis=1) - benign
        u = (malignant * (benign_below + 0.5 * benign)).sum(axis=1)
        pairs = malignant.sum(axis=1) * benign.sum(axis=1)
        aucs.append(u[pairs > 0] / pairs[pairs > 0])
    return np.concatenate(aucs)


def auc_with_interval(cases: Sequence[ConfirmedCase], n_boot: int) -> dict:
    """Mann-Whitney AUC of p_malignant, with a 95 % percentile interval from resampling cases."""
    y = np.array([c.malignant for c in cases], bool)
    if len(cases) == 0 or y.all() or not y.any():
        return {"value": None, "ci95": None}
    score = np.array([c.p_malignant for c in cases], np.float64)
    low, high = np.percentile(bootstrap_aucs(y, score, n_boot), [2.5, 97.5])
    return {"value": _finite(metrics.roc_auc(y, score)), "ci95": [float(low), float(high)]}


def urgent_band(cases: Sequence[ConfirmedCase]) -> dict:
    """Sensitivity (malignant cases the model put in the urgent band) and specificity (benign ones it did not)."""
    malignant = [c for c in cases if c.malignant]
    benign = [c for c in cases if not c.malignant]
    return {
        "sensitivity": _proportion(sum(c.band == URGENT_BAND for c in malignant), len(malignant)),
        "specificity": _proportion(sum(c.band != URGENT_BAND for c in benign), len(benign)),
    }


def reliability(cases: Sequence[ConfirmedCase], bins: int = RELIABILITY_BINS) -> dict:
    """Equal-width bins of p_malignant: mean predicted, observed malignant fraction, count; and the ECE."""
    y = np.array([c.malignant for c in cases], np.float64)
    p = np.array([c.p_malignant for c in cases], np.float64)
    rows = metrics.reliability(y, p, bins) if len(cases) else []
    return {
        "bins": [
            {
                "lower": i / bins,
                "upper": (i + 1) / bins,
                "mean_predicted": predicted,
                "observed": observed,
                "count": count,
            }
            for i, (predicted, observed, count) in enumerate(rows)
        ],
        "ece": _finite(metrics.binary_ece(y, p, bins)) if len(cases) else None,
    }


def figures(cases: Sequence[ConfirmedCase], n_boot: int) -> dict:
    return {
        "cases": len(cases),
        "malignant": sum(c.malignant for c in cases),
        "auc": auc_with_interval(cases, n_boot),
        "urgent_band": urgent_band(cases),
        "reliability": reliability(cases),
    }


@dataclass(frozen=True)
class Reference:
    """The model card's urgent-band sensitivity and the lower end of its 95 % interval."""

    sensitivity: float
    lower: float
    source: str


def sensitivity_alert(recent_malignant_bands: Sequence[str], window: int, reference: Reference) -> dict:
    """Whether the urgent band caught fewer of the last `window` confirmed malignant cases than the model
    card's figure allows: below it by more than its interval, i.e. under the interval's lower end.

    Judged only on a full window: a handful of cases says nothing either way."""
    caught = sum(band == URGENT_BAND for band in recent_malignant_bands)
    considered = len(recent_malignant_bands)
    sensitivity = caught / considered if considered else None
    full = considered >= window
    return {
        "window": window,
        "considered": considered,
        "caught": caught,
        "sensitivity": sensitivity,
        "ci95": wilson_interval(caught, considered),
        "reference": reference.sensitivity,
        "reference_lower": reference.lower,
        "reference_source": reference.source,
        "evaluated": full,
        "alert": bool(full and sensitivity < reference.lower),
    }
