"""How training weighs and draws its examples: the loss weight of each class, and how often each image
is drawn (its source's weight, each source's malignant share)."""

from __future__ import annotations

import numpy as np

from jax_models import data


def class_weights(labels: np.ndarray, num_classes: int, power: float) -> np.ndarray:
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    w = np.where(counts > 0, np.maximum(counts, 1) ** -power, 0.0)
    return (w / (w * counts).sum() * counts.sum()).astype(np.float32)


def sampling_probabilities(records: data.Records, source_weights: dict, prevalence_balance: float = 0.0) -> np.ndarray:
    """How often each training image is drawn: its source's weight, and with `prevalence_balance`
    b > 0 each source's malignant share moved towards the pooled share (b = 1: equal, the source's
    total unchanged). ISIC 2020 is 2 % malignant, HAM10000 20 %: unbalanced, what a source's images
    look like (its clinic, its camera) tells the network how likely they are to be malignant, and
    a whole source can be scored low as a block."""
    w = np.array([source_weights.get(s, 1.0) for s in records.source], np.float64)
    if prevalence_balance:
        pooled = records.malignant.mean()
        for source in np.unique(records.source):
            in_source = records.source == source
            rate = records.malignant[in_source].mean()
            if 0 < rate < 1:
                malignant = in_source & (records.malignant == 1)
                w[malignant] *= (pooled / rate) ** prevalence_balance
                w[in_source & ~malignant] *= ((1 - pooled) / (1 - rate)) ** prevalence_balance
    return w / w.sum()
