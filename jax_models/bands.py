"""Urgency bands as a checkpoint defines them: names from most to least severe, and the score each starts at.

A checkpoint's metadata holds `thresholds`, e.g. {"urgent": 0.11, "soon": 0.005}: a band starts at
its threshold, a higher threshold is a more severe band, and a score under every threshold is
"routine". Serving, triage's policy, the queue's SQL and the browser's words all take the bands
from here (triage/bands.py adapts them for the server), so they cannot disagree on the order.

Pure Python: reading the bands needs neither jax nor the weights.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ROUTINE = 'routine'
# The checkpoint shipped in the repository (jax_models/checkpoint.py's SHIPPED_DIR, without importing jax).
SHIPPED_METADATA = Path(__file__).resolve().parent / 'weights' / 'metadata.json'


@dataclass(frozen=True)
class Bands:
    """(name, threshold) from most to least severe; "routine", which has no threshold, comes last."""

    thresholds: tuple[tuple[str, float], ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.thresholds) + (ROUTINE,)

    def band_for(self, p_malignant: float) -> str:
        """The most severe band whose threshold the score reaches (at or above), else "routine"."""
        for name, threshold in self.thresholds:
            if p_malignant >= threshold:
                return name
        return ROUTINE

    def rank(self, name: str) -> int:
        """0 for the most severe band. A name these bands do not know ranks -1, above them all: an unexpected
        signal is never hidden at the bottom of a queue."""
        return self.names.index(name) if name in self.names else -1

    def more_severe(self, a: str, b: str) -> str:
        return a if self.rank(a) <= self.rank(b) else b

    def threshold(self, name: str) -> float | None:
        return dict(self.thresholds).get(name)


def from_thresholds(thresholds: Mapping[str, float]) -> Bands:
    """The bands of a checkpoint's `thresholds`; ValueError when they cannot define an order."""
    if not thresholds:
        raise ValueError('a checkpoint needs at least one band threshold')
    if ROUTINE in thresholds:
        raise ValueError(f'"{ROUTINE}" is the band under every threshold; it has none of its own')
    values = {name: float(value) for name, value in thresholds.items()}
    for name, value in values.items():
        if not name or not name.isidentifier() or not name.islower():
            raise ValueError(f'band name {name!r} must be a lower-case identifier')
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise ValueError(f'the threshold of band {name!r} must be a probability, not {value}')
    # A recalibration on few cases may give two bands one threshold; the checkpoint lists the more severe
    # first and the sort is stable, so that one takes every such score and the other stays empty.
    return Bands(tuple(sorted(values.items(), key=lambda item: item[1], reverse=True)))


def from_metadata(metadata: Mapping) -> Bands:
    return from_thresholds(metadata['thresholds'])


def read(directory: str | Path | None = None) -> Bands:
    """The bands of the checkpoint in `directory` (None: the shipped one), from its metadata.json alone."""
    path = SHIPPED_METADATA if directory is None else Path(directory) / SHIPPED_METADATA.name
    return from_metadata(json.loads(path.read_text()))
