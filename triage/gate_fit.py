"""`skindoc gate fit-quality`: the photo-quality thresholds, fitted on the training photos.

Each limit is a quantile of its measure over the train splits: a photo is flagged only where it is
worse than all but QUANTILE of the photos the model learned from (the dermoscopy of the
training data's labelled folders: HAM10000, ISIC 2017, ISIC 2020). The result, with the quantiles
and counts behind it, is written to triage/quality_thresholds.json, which ships with the code.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from triage import gate_data, photo_quality

# Share of training photos allowed below (or above) each limit.
QUANTILE = 0.002
# measure -> (limit name, which tail is bad)
_LIMITS = {
    "sharpness": ("sharpness_min", "low"),
    "brightness": [("brightness_min", "low"), ("brightness_max", "high")],
    "clipped": ("clipped_max", "high"),
    "colourfulness": ("colourfulness_min", "low"),
    "lesion_extent": ("lesion_extent_min", "low"),
    "lesion_at_edge": ("lesion_at_edge_max", "high"),
}


def measure_paths(paths: Sequence[Path]) -> dict[str, np.ndarray]:
    rows = [photo_quality.measure(image).as_dict() for _, image in gate_data.images(paths)]
    return {name: np.array([row[name] for row in rows]) for name in rows[0]}


def fit_limits(measures: dict[str, np.ndarray], quantile: float = QUANTILE) -> dict[str, float]:
    limits = {}
    for measure, spec in _LIMITS.items():
        for name, tail in spec if isinstance(spec, list) else [spec]:
            q = quantile if tail == "low" else 1 - quantile
            limits[name] = round(float(np.quantile(measures[measure], q)), 4)
    return limits


def fit_quality(data_dirs: Sequence[str | Path], out: Path = photo_quality.THRESHOLDS_FILE) -> dict:
    folders = [Path(d) for d in data_dirs]
    paths = [p for folder in folders for p in gate_data.split_paths(folder, ["train"])]
    measures = measure_paths(paths)
    result = {
        "limits": fit_limits(measures),
        "quantile": QUANTILE,
        "analysis_side": photo_quality.ANALYSIS_SIDE,
        "fitted_on": {folder.name: len(gate_data.split_paths(folder, ["train"])) for folder in folders},
        "command": "skindoc gate fit-quality " + " ".join(f"--data {f.name}" for f in folders),
        "train_percentiles": {
            name: {str(q): round(float(np.percentile(v, q)), 4) for q in (0.2, 1, 50, 99, 99.8)}
            for name, v in measures.items()
        },
    }
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result
