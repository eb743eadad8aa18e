"""From logits to calibrated probabilities, urgency thresholds and the full figure set."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jax_models import metrics

CALIBRATION_SOURCE = 'ham10000'


def adjusted_probs(logits, class_weights_or_bias, temperature: float, bias: bool = False):
    """Probabilities with the class-weighting prior shift undone, at `temperature`."""
    b = np.asarray(class_weights_or_bias, np.float64)
    if not bias:
        b = -np.log(b)
    return metrics.softmax((np.asarray(logits, np.float64) + b) / temperature)


def p_malignant(probs, class_names: Sequence[str], malignant: Sequence[str]):
    idx = [list(class_names).index(c) for c in malignant]
    return probs[:, idx].sum(axis=1)


def metrics_auc(y, score) -> float:
    return metrics.roc_auc(y, score)


# Thresholds sit this far below the val score that defines them, so float32
# rounding in serving cannot move that image to the band below.
THRESHOLD_MARGIN = 1e-6


def thresholds_from(y, p_mal, urgent_sensitivity: float, soon_sensitivity: float) -> dict:
    return {
        'urgent': metrics.threshold_for_sensitivity(y, p_mal, urgent_sensitivity) - THRESHOLD_MARGIN,
        'soon': metrics.threshold_for_sensitivity(y, p_mal, soon_sensitivity) - THRESHOLD_MARGIN,
    }


def fit_temperature(logits, labels, class_names, malignant_classes) -> float:
    """Temperature for the prior-corrected logits, fitted to the binary NLL of p_malignant
    (the score the queue uses), on val."""
    positive = [list(class_names).index(c) for c in malignant_classes]
    return metrics.fit_temperature(logits, labels, positive)


def report(
    part_labels,
    malignant,
    lesion_ids,
    logits,
    bias,
    temperature: float,
    class_names,
    malignant_classes,
    thresholds: dict,
    bins: int = 15,
    n_boot: int = 1000,
) -> dict:
    """Every figure for one labelled set.

    `logits` are prior-corrected (network output + `bias`, the checkpoint's logit
    bias); "raw" figures remove the bias again (the network as trained, with its
    class-weighted loss), "T=1" keep it, "after" add the fitted temperature.
    """
    labels = np.asarray(part_labels)
    y = np.asarray(malignant)
    logits = np.asarray(logits, np.float64)
    raw = metrics.softmax(logits - np.asarray(bias, np.float64))
    uncal = metrics.softmax(logits)
    cal = metrics.softmax(logits / temperature)
    p_raw = p_malignant(raw, class_names, malignant_classes)
    p_unc = p_malignant(uncal, class_names, malignant_classes)
    p_cal = p_malignant(cal, class_names, malignant_classes)
    present = sorted(set(labels.tolist()))
    pred = cal.argmax(axis=1)
    out = {
        'n': len(y),
        'n_malignant': int(y.sum()),
        'n_lesions': len(set(lesion_ids)),
        'auc_malignant': metrics.bootstrap_auc(y, p_cal, lesion_ids, n_boot=n_boot),
        'sensitivity_at_specificity_80': metrics.sensitivity_at_specificity(y, p_cal, 0.80),
        'sensitivity_at_specificity_90': metrics.sensitivity_at_specificity(y, p_cal, 0.90),
        'specificity_at_sensitivity_95': metrics.specificity_at_sensitivity(y, p_cal, 0.95),
        'operating_points': {band: metrics.sens_spec_at(y, p_cal, t) for band, t in thresholds.items()},
        'ece_malignant_before': metrics.binary_ece(y, p_raw, bins),
        'ece_malignant_prior_corrected_t1': metrics.binary_ece(y, p_unc, bins),
        'ece_malignant_after': metrics.binary_ece(y, p_cal, bins),
        'ece_top_label_before': metrics.top_label_ece(labels, raw, bins),
        'ece_top_label_after': metrics.top_label_ece(labels, cal, bins),
        'balanced_accuracy': metrics.balanced_accuracy(labels, pred, len(class_names)),
        'classes_present': [class_names[c] for c in present],
        'confusion_matrix': metrics.confusion_matrix(labels, pred, len(class_names)).tolist(),
        'reliability_after': metrics.reliability(y, p_cal, bins),
        'reliability_before': metrics.reliability(y, p_raw, bins),
    }
    if 'mel' in class_names:
        mel = list(class_names).index('mel')
        is_mel = labels == mel
        if is_mel.any() and (~is_mel).any():
            out['auc_melanoma_vs_rest_p_mel'] = metrics.roc_auc(is_mel, cal[:, mel])
    return out


def calibrate(logits: dict, class_weights, class_names, config: dict) -> dict:
    """Fits the temperature and the thresholds on HAM10000 val; figures for every set.

    `logits` maps (source, split) -> (records, logits) on the canvas path.
    """
    bias = -np.log(np.asarray(class_weights, np.float64))
    part, lg = logits[(CALIBRATION_SOURCE, 'val')]
    temperature = fit_temperature(lg + bias, part.label, class_names, config['malignant'])
    probs = adjusted_probs(lg, bias, temperature, bias=True)
    p_mal = p_malignant(probs, class_names, config['malignant'])
    thresholds = thresholds_from(part.malignant, p_mal, config['urgent_sensitivity'], config['soon_sensitivity'])
    figures = {}
    for (source, split), (part, lg) in logits.items():
        r = report(
            part.label,
            part.malignant,
            part.lesion_id,
            lg + bias,
            bias,
            temperature,
            class_names,
            config['malignant'],
            thresholds,
            config['ece_bins'],
            n_boot=200,
        )
        figures[f'{source}/{split}'] = {
            k: r[k]
            for k in (
                'n',
                'auc_malignant',
                'specificity_at_sensitivity_95',
                'ece_malignant_before',
                'ece_malignant_after',
                'balanced_accuracy',
                'operating_points',
            )
        }
    return {'temperature': temperature, 'thresholds': thresholds, 'metrics': figures}
