"""`fit-ood`: fit the out-of-distribution statistics of any checkpoint on its own training data.

Features come through the serving path (the original photos, `preprocess`, the compiled network), so
the statistics describe exactly what the server will compute. Train splits give one mean per diagnosis
and the shared covariance, val splits the threshold; the result is written into the checkpoint folder.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from jax_models import checkpoint, data, ood
from jax_models.evaluate import preprocessed_batches
from jax_models.serving import Classifier, load_classifier


def serving_features(clf: Classifier, paths, batch: int = 64) -> np.ndarray:
    """Pooled last-feature-map of each photo, through the serving path."""
    return np.concatenate(
        [clf.predict_arrays_with_features(arrays)[1] for arrays in preprocessed_batches(clf, paths, batch)]
    )


def labelled_photos(data_dirs: list[str], split: str) -> tuple[list[Path], np.ndarray, dict[str, int]]:
    """(paths, diagnosis of each, count per source folder) of one split. The diagnosis is the folder's own
    `dx` text, whatever its vocabulary (ISIC 2020 says "melanoma", HAM10000 "mel"): each is one group."""
    paths, groups, counts = [], [], {}
    for folder in (f for d in data_dirs for f in data.source_dirs(d)):
        with open(folder / 'labels.csv', newline='') as f:
            rows = [r for r in csv.DictReader(f) if r['split'] == split]
        paths += [folder / 'images' / f"{r['image_id']}.jpg" for r in rows]
        groups += [f"{folder.name}:{r['dx']}" if r['dx'] not in data.CLASS_NAMES else r['dx'] for r in rows]
        counts[folder.name] = len(rows)
    return paths, np.unique(groups, return_inverse=True)[1], counts


def fit_checkpoint(weights_dir: str | Path | None, data_dirs: list[str]) -> dict:
    """Fits and stores the statistics; returns the metadata's `ood` entry."""
    directory = Path(weights_dir) if weights_dir is not None else checkpoint.SHIPPED_DIR
    clf = load_classifier(directory)
    train_paths, train_groups, train_counts = labelled_photos(data_dirs, 'train')
    val_paths, _, val_counts = labelled_photos(data_dirs, 'val')
    if not train_paths or not val_paths:
        raise ValueError('fit-ood needs labelled train and val images')
    stats, summary = ood.fit(serving_features(clf, train_paths), train_groups, serving_features(clf, val_paths))
    fitted_on = {'train': train_counts, 'val': val_counts, 'model_version': clf.version}
    return ood.save(directory, stats, summary, fitted_on)
