"""A photo's quality in six numbers a person can check: sharpness, brightness, blown-out pixels, colour, how
much of the frame the lesion spans and how much of the frame's edge it covers.

Every measure is taken on the same small square the classifier sees (the whole photo squashed to
ANALYSIS_SIDE pixels, grey levels 0..1), so a threshold fitted on the training images means the same for a
phone photo of any size. The browser computes the same measures (web/static/js/photo_check.js) for its
retake hint; the server's value is the one that counts. Thresholds live in quality_thresholds.json, written
by `skindoc gate fit-quality` (triage/gate_fit.py).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

ANALYSIS_SIDE = 128
THRESHOLDS_FILE = Path(__file__).resolve().parent / "quality_thresholds.json"
# Pixels this dark are outside the lit field (a dermatoscope's black ring, a vignette), not skin or lesion.
OUTSIDE_FIELD = 0.08
# Width, in analysis pixels, of the frame's edge band used for "cut off".
EDGE_BAND = 4

# Plain words for each problem, with what to do about it (shown to the patient and the doctor).
PROBLEMS = {
    "blurred": "too blurred — hold the phone still, tap the spot on the screen to focus, and use more light",
    "too_dark": "too dark — move to daylight or turn on a lamp; avoid your own shadow",
    "too_bright": "too bright — avoid direct flash or sunlight on the skin; try indirect light",
    "no_colour": "no colour — turn off black-and-white mode or filters and take it in colour",
    "lesion_too_small": "the spot is too small in the picture — move closer until it fills the middle of the frame",
    "lesion_cut_off": "the spot is cut off at the edge — step back a little and keep the whole spot in the frame",
}


@dataclass(frozen=True)
class QualityMeasures:
    sharpness: float  # 0..1, share of contrast at the finest scale (low: blurred)
    brightness: float  # mean grey level of the lit field, 0..1
    clipped: float  # share of pixels blown out to white
    colourfulness: float  # mean saturation of the lit field (0: black and white)
    lesion_extent: float  # side of the box holding the middle 90 % of the lesion, as a share of the frame
    lesion_at_edge: float  # share of the frame's edge band that is lesion

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in asdict(self).items()}


def analysis_square(image: Image.Image) -> Image.Image:
    """The photo as an ANALYSIS_SIDE x ANALYSIS_SIDE RGB square (whole photo squashed, like the model)."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    factor = min(rgb.size) // (2 * ANALYSIS_SIDE)
    if factor >= 2:
        rgb = rgb.reduce(factor)
    return rgb.resize((ANALYSIS_SIDE, ANALYSIS_SIDE), Image.Resampling.BILINEAR)


def colourfulness(square: Image.Image, field: np.ndarray) -> float:
    """Mean saturation (max - min) / max of the lit pixels: 0 for a black-and-white photo; skin never is."""
    # Maximum and minimum are exact in the pixels' own bytes, taken across the three colour planes (a
    # reduction along an axis of three is slow in numpy); only the ratio needs floating point.
    red, green, blue = (np.asarray(square)[..., band][field] for band in range(3))
    if not red.size:
        return 0.0
    top = np.maximum(np.maximum(red, green), blue)
    bottom = np.minimum(np.minimum(red, green), blue)
    return float(np.divide(top - bottom, np.maximum(top, 1), dtype=np.float64).mean())


def _mean_gradient(grey: np.ndarray) -> float:
    return float(np.abs(np.diff(grey, axis=0)).mean() + np.abs(np.diff(grey, axis=1)).mean())


def sharpness(grey: np.ndarray) -> float:
    """How much of the photo's contrast lives at the finest scale, 0..1.

    The mean step between neighbouring pixels, compared with the same at half the resolution: where
    all structure is coarse (a blurred photo) a step at half resolution is twice a step at full
    resolution (ratio 0.5, sharpness 0); pixel-fine detail gives equal steps (ratio 1, sharpness 1).
    """
    half = (grey[0::2, 0::2] + grey[1::2, 0::2] + grey[0::2, 1::2] + grey[1::2, 1::2]) / 4
    coarse = _mean_gradient(half)
    if coarse <= 1e-9:
        return 0.0
    return float(np.clip(2 * _mean_gradient(grey) / coarse - 1, 0.0, 1.0))


def _otsu(values: np.ndarray) -> float:
    hist, edges = np.histogram(values, bins=64, range=(0.0, 1.0))
    centres = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(hist)
    total = weight[-1]
    if total == 0:
        return 0.5
    mean = np.cumsum(hist * centres)
    between = (mean[-1] * weight - mean * total) ** 2 / np.maximum(weight * (total - weight), 1)
    return float(centres[int(np.argmax(between))])


def lesion_mask(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lesion, lit field): the lesion is the darker Otsu class of the lit field."""
    field = grey > OUTSIDE_FIELD
    if field.sum() < 16:
        return np.zeros_like(field), field
    return field & (grey < _otsu(grey[field])), field


def lesion_extent(lesion: np.ndarray) -> float:
    """The larger side of the box that holds the middle 90 % of lesion pixels, as a share of the frame:
    a spot photographed from too far away spans a small part of it."""
    rows, cols = np.nonzero(lesion)
    if rows.size < 2:
        return 0.0
    spans = [np.percentile(v, 95) - np.percentile(v, 5) for v in (rows, cols)]
    return float(max(spans) / (lesion.shape[0] - 1))


def measure(image: Image.Image) -> QualityMeasures:
    square = analysis_square(image)
    grey = np.asarray(square.convert("L"), np.float64) / 255.0
    lesion, field = lesion_mask(grey)
    edge = np.ones_like(field)
    edge[EDGE_BAND:-EDGE_BAND, EDGE_BAND:-EDGE_BAND] = False
    lit = grey[field]
    return QualityMeasures(
        sharpness=sharpness(grey),
        brightness=float(lit.mean()) if lit.size else 0.0,
        clipped=float((grey >= 253 / 255).mean()),
        colourfulness=colourfulness(square, field),
        lesion_extent=lesion_extent(lesion),
        lesion_at_edge=float((lesion & edge).sum() / edge.sum()),
    )


def load_thresholds(path: Path = THRESHOLDS_FILE) -> dict:
    return json.loads(path.read_text())


def problems(measures: QualityMeasures, thresholds: dict) -> list[str]:
    """The quality problems of a photo (keys of PROBLEMS), in the order a patient should fix them."""
    limits = thresholds["limits"]
    found = []
    if measures.sharpness < limits["sharpness_min"]:
        found.append("blurred")
    if measures.brightness < limits["brightness_min"]:
        found.append("too_dark")
    if measures.brightness > limits["brightness_max"] or measures.clipped > limits["clipped_max"]:
        found.append("too_bright")
    if measures.colourfulness < limits["colourfulness_min"]:
        found.append("no_colour")
    if measures.lesion_extent < limits["lesion_extent_min"]:
        found.append("lesion_too_small")
    if measures.lesion_at_edge > limits["lesion_at_edge_max"]:
        found.append("lesion_cut_off")
    return found
