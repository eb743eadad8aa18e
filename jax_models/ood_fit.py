"""`fit-ood`: fit the out-of-distribution statistics of any checkpoint on its own training data.

Features come through the serving path (the original photos, `preprocess`, the compiled network), so
the statistics describe exactly what the server will compute. Train splits give the class means and
covariance, val splits the threshold; the result is written into the checkpoint folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from jax_models import checkpoint, data, ood
from jax_models.preprocess import preprocess
from jax_models.serving import Classifier, load_classifier


def serving_features(clf: Classifier, paths, batch: int = 64) -> np.ndarray:
  """Pooled last-feature-map of each photo, through the serving path."""
  out = []
  for start in range(0, len(paths), batch):
    arrays = []
    for path in paths[start:start + batch]:
      with Image.open(path) as im:
        arrays.append(preprocess(im, clf.image_size))
    out.append(clf.predict_arrays_with_features(np.stack(arrays))[1])
  return np.concatenate(out)


def fit_checkpoint(weights_dir: str | Path | None, data_dirs: list[str]) -> dict:
  """Fits and stores the statistics; returns the metadata's `ood` entry."""
  directory = Path(weights_dir) if weights_dir is not None else checkpoint.SHIPPED_DIR
  clf = load_classifier(directory)
  records = data.concat([data.read_labels(d) for d in data_dirs])
  train, val = records.subset(split='train'), records.subset(split='val')
  if not len(train) or not len(val):
    raise ValueError('fit-ood needs labelled train and val images')
  stats, summary = ood.fit(serving_features(clf, train.paths), train.label, serving_features(clf, val.paths))
  fitted_on = {'train': {s: int((train.source == s).sum()) for s in sorted(set(train.source))},
               'val': {s: int((val.source == s).sum()) for s in sorted(set(val.source))},
               'model_version': clf.version}
  return ood.save(directory, stats, summary, fitted_on)
