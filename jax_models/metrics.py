"""Evaluation figures in numpy: ROC AUC with lesion bootstrap, operating points, calibration."""

from __future__ import annotations

import numpy as np


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties counted half)."""
    y = np.asarray(y).astype(bool)
    score = np.asarray(score, np.float64)
    n_pos, n_neg = y.sum(), (~y).sum()
    if n_pos == 0 or n_neg == 0:
        return float('nan')
    order = np.argsort(score, kind='mergesort')
    ranks = np.empty(len(score))
    sorted_scores = score[order]
    # Average ranks over ties.
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_curve(y: np.ndarray, score: np.ndarray):
    """(false positive rate, true positive rate, thresholds), thresholds descending."""
    y = np.asarray(y).astype(bool)
    order = np.argsort(-np.asarray(score), kind='mergesort')
    s, yy = np.asarray(score)[order], y[order]
    distinct = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tps = np.cumsum(yy)[distinct]
    fps = (1 + distinct) - tps
    tpr = np.r_[0.0, tps / max(y.sum(), 1)]
    fpr = np.r_[0.0, fps / max((~y).sum(), 1)]
    return fpr, tpr, np.r_[np.inf, s[distinct]]


def bootstrap_auc(y, score, groups, n_boot: int = 1000, seed: int = 0):
    """AUC with a 95 % percentile interval from resampling groups (lesions) with replacement."""
    y, score, groups = np.asarray(y), np.asarray(score), np.asarray(groups)
    uniq, inverse = np.unique(groups, return_inverse=True)
    members = [[] for _ in uniq]
    for i, g in enumerate(inverse):
        members[g].append(i)
    members = [np.array(m) for m in members]
    rng = np.random.default_rng(seed)
    aucs = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(uniq), len(uniq))
        idx = np.concatenate([members[g] for g in pick])
        a = roc_auc(y[idx], score[idx])
        if not np.isnan(a):
            aucs.append(a)
    lo, hi = np.percentile(aucs, [2.5, 97.5]) if aucs else (float('nan'), float('nan'))
    return {'auc': roc_auc(y, score), 'ci95': [float(lo), float(hi)], 'n_boot': len(aucs)}


def _one_class(y) -> bool:
    y = np.asarray(y).astype(bool)
    return y.all() or not y.any()


NAN_POINT = {'sensitivity': float('nan'), 'specificity': float('nan'), 'threshold': float('nan')}


def sensitivity_at_specificity(y, score, specificity: float) -> dict:
    if _one_class(y):
        return dict(NAN_POINT)
    fpr, tpr, thr = roc_curve(y, score)
    ok = np.nonzero(1 - fpr >= specificity)[0]
    i = ok[np.argmax(tpr[ok])]
    return {'specificity': float(1 - fpr[i]), 'sensitivity': float(tpr[i]), 'threshold': float(thr[i])}


def specificity_at_sensitivity(y, score, sensitivity: float) -> dict:
    if _one_class(y):
        return dict(NAN_POINT)
    fpr, tpr, thr = roc_curve(y, score)
    ok = np.nonzero(tpr >= sensitivity)[0]
    i = ok[np.argmin(fpr[ok])]
    return {'sensitivity': float(tpr[i]), 'specificity': float(1 - fpr[i]), 'threshold': float(thr[i])}


def threshold_for_sensitivity(y, score, sensitivity: float) -> float:
    """The highest threshold t with sensitivity(score >= t) >= `sensitivity`."""
    pos = np.sort(np.asarray(score)[np.asarray(y).astype(bool)])[::-1]
    if len(pos) == 0:
        return 0.0
    k = int(np.ceil(sensitivity * len(pos)))
    return float(pos[max(k - 1, 0)])


def sens_spec_at(y, score, threshold: float) -> dict:
    y = np.asarray(y).astype(bool)
    flag = np.asarray(score) >= threshold
    return {
        'threshold': float(threshold),
        'sensitivity': float((flag & y).sum() / max(y.sum(), 1)),
        'specificity': float((~flag & ~y).sum() / max((~y).sum(), 1)),
    }


def binary_ece(y, p, bins: int = 15) -> float:
    """Expected calibration error of a probability of the positive class (equal-width bins)."""
    y, p = np.asarray(y, np.float64), np.asarray(p, np.float64)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            ece += m.mean() * abs(p[m].mean() - y[m].mean())
    return float(ece)


def reliability(y, p, bins: int = 15):
    """Per-bin (mean predicted, observed frequency, count) for a reliability diagram."""
    y, p = np.asarray(y, np.float64), np.asarray(p, np.float64)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    out = []
    for b in range(bins):
        m = which == b
        out.append((float(p[m].mean()) if m.any() else None, float(y[m].mean()) if m.any() else None, int(m.sum())))
    return out


def top_label_ece(labels, probs, bins: int = 15) -> float:
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == np.asarray(labels)
    return binary_ece(correct, conf, bins)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(logits, labels, temperature: float, positive=None) -> float:
    """Mean negative log-likelihood at `temperature`: of the class labels, or, when
    `positive` (class indices) is given, of the binary outcome label in `positive`."""
    # float64: in float32, 1 - 1e-12 rounds to 1 and a confident benign score would cost log(0).
    p = softmax(np.asarray(logits, np.float64) / temperature)
    if positive is None:
        return float(-np.mean(np.log(np.maximum(p[np.arange(len(labels)), labels], 1e-12))))
    q = np.clip(p[:, positive].sum(axis=1), 1e-12, 1 - 1e-12)
    y = np.isin(labels, positive)
    return float(-np.mean(np.where(y, np.log(q), np.log(1 - q))))


def fit_temperature(logits, labels, positive=None) -> float:
    """Temperature minimising `nll` (golden-section search on log T in [0.05, 20])."""

    def f(log_t):
        return nll(logits, labels, float(np.exp(log_t)), positive)

    lo, hi = np.log(0.05), np.log(20.0)
    g = (np.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = f(a), f(b)
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = f(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = f(b)
    return float(np.exp((lo + hi) / 2))


def balanced_accuracy(labels, pred, num_classes: int) -> float:
    recalls = [np.mean(pred[labels == c] == c) for c in range(num_classes) if (labels == c).any()]
    return float(np.mean(recalls))


def confusion_matrix(labels, pred, num_classes: int) -> np.ndarray:
    m = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(m, (np.asarray(labels), np.asarray(pred)), 1)
    return m
