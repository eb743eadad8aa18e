"""Is a photo inside what the network was trained on? A Mahalanobis score on its own pooled features.

Lee et al. (NeurIPS 2018): fit one mean per class and a shared covariance to the globally pooled last
feature map (`model.features(x)` averaged over space) of the training images; a photo's score is its
squared Mahalanobis distance to the nearest class mean. The pooled features are scaled to unit length
first: on EfficientNet-Lite0's 1,280 features the raw distances let 12 of 26 non-lesion photos (grass,
gravel, a rocket) through at the same 99.5 % val pass; unit-length features let 5 through. The price:
a weak response (a lesion shrunk to a small spot) looks like a strong one (docs/model-card.md). The
threshold is the score that VAL_PASS of the validation images stay under. Nothing here knows the
network's shape: any checkpoint whose network has `features(x)` works, and the feature size is read
from the data.

The statistics live beside the weights (`ood.npz`) and are described in `metadata.json` under `ood`,
with a digest of the weights they were fitted on: statistics of other weights are ignored (the gate
then reports the check as unavailable, and the score is not trusted) until `skindoc fit-ood` is run
again for the new weights.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from jax_models import checkpoint

OOD_FILE = 'ood.npz'
METHOD = 'mahalanobis-tied-covariance-on-unit-pooled-features'
# Statistics fitted before unit-length features (the first classifier's): still read, scored as fitted.
RAW_FEATURES_METHOD = 'mahalanobis-tied-covariance-on-pooled-features'
# Share of validation images that must pass: the gate's false alarms on in-distribution photos.
VAL_PASS = 0.995
# Ledoit-Wolf-style shrinkage of the covariance towards a scaled identity, so it can be inverted
# whatever the feature size (the dimensions can outnumber some classes' images).
SHRINKAGE = 0.01


@dataclass(frozen=True)
class OodStatistics:
    means: np.ndarray  # classes x features
    precision: np.ndarray  # features x features
    threshold: float
    unit_features: bool = True

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance of each row of `features` to the nearest class mean."""
        features = np.asarray(features, np.float64)
        if self.unit_features:
            features = unit_length(features)
        # (f - m) P (f - m) expanded, so the precision matrix (13 MB at 1,280 features) is read once per
        # batch rather than once per class: one photo's check went from about 10 ms to under 1 ms.
        projected = features @ self.precision
        d2 = (projected * features).sum(axis=1)[:, None] - 2 * projected @ self.means.T + self._mean_terms
        return d2.min(axis=1)

    @cached_property
    def _mean_terms(self) -> np.ndarray:
        return ((self.means @ self.precision) * self.means).sum(axis=1)


def unit_length(features: np.ndarray) -> np.ndarray:
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


def weights_digest(directory: str | Path) -> str:
    """A digest of the weights' values (not of the file, which a re-save may re-zip differently)."""
    h = hashlib.sha256()
    with np.load(Path(directory) / checkpoint.WEIGHTS_FILE) as z:
        for name in sorted(z.files):
            h.update(name.encode())
            h.update(np.ascontiguousarray(z[name], np.float32).tobytes())
    return h.hexdigest()[:16]


def fit(features: np.ndarray, labels: np.ndarray, val_features: np.ndarray) -> tuple[OodStatistics, dict]:
    """Class means and shared covariance on training features, threshold on validation features."""
    features = unit_length(np.asarray(features, np.float64))
    classes = sorted(set(labels.tolist()))
    means = np.stack([features[labels == c].mean(axis=0) for c in classes])
    centred = features - means[np.searchsorted(classes, labels)]
    cov = centred.T @ centred / len(features)
    dim = cov.shape[0]
    cov = (1 - SHRINKAGE) * cov + SHRINKAGE * np.trace(cov) / dim * np.eye(dim)
    stats = OodStatistics(means, np.linalg.inv(cov), 0.0)
    val_scores = stats.scores(val_features)
    threshold = float(np.quantile(val_scores, VAL_PASS))
    summary = {
        'feature_dim': dim,
        'classes': len(classes),
        'train_images': len(features),
        'val_images': len(val_features),
        'val_pass_target': VAL_PASS,
        'train_pass': float((stats.scores(features) <= threshold).mean()),
        'val_score_quantiles': {q: float(np.quantile(val_scores, float(q))) for q in ('0.5', '0.9', '0.99', '0.995')},
    }
    return OodStatistics(means, stats.precision, threshold), summary


def save(directory: str | Path, stats: OodStatistics, summary: dict, fitted_on: dict) -> dict:
    """Writes ood.npz and the `ood` entry of metadata.json (the model version is unchanged)."""
    directory = Path(directory)
    np.savez(directory / OOD_FILE, means=stats.means.astype(np.float32), precision=stats.precision.astype(np.float32))
    metadata = checkpoint.read_metadata(directory)
    metadata['ood'] = {
        'method': METHOD,
        'file': OOD_FILE,
        'threshold': stats.threshold,
        'weights_digest': weights_digest(directory),
        'shrinkage': SHRINKAGE,
        'fitted_on': fitted_on,
        **summary,
    }
    (directory / checkpoint.METADATA_FILE).write_text(json.dumps(metadata, indent=2) + '\n')
    return metadata['ood']


def load(directory: str | Path, metadata: dict) -> OodStatistics | None:
    """The checkpoint's statistics, or None when it has none, they were fitted on other weights, or by a
    method this code does not know (the gate then fails closed)."""
    entry = metadata.get('ood')
    directory = Path(directory)
    if not entry or not (directory / entry['file']).exists():
        return None
    method = entry.get('method')
    if entry['weights_digest'] != weights_digest(directory) or method not in (METHOD, RAW_FEATURES_METHOD):
        return None
    with np.load(directory / entry['file']) as z:
        return OodStatistics(
            z['means'].astype(np.float64),
            z['precision'].astype(np.float64),
            float(entry['threshold']),
            unit_features=method == METHOD,
        )
