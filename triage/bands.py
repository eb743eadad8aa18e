"""The urgency bands as the server uses them: one definition for the policy, the queue's SQL, the serializers
and the browser (GET /api/v1/triage/bands).

Names, order and thresholds are the checkpoint's (jax_models/bands.py). The shipped checkpoint's
names are the ones the schema accepts (chat's CHECK constraints; tests/test_triage_bands.py holds
them equal), so a checkpoint configured in its place must use the same names: `checked` refuses
one that does not, before it scores anything. The words a person reads for each band live here too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from jax_models import bands as checkpoint_bands
from jax_models.bands import Bands

BANDS = checkpoint_bands.read()
NAMES = BANDS.names


def checked(bands: Bands) -> Bands:
    """`bands` if its names and order are the schema's; ValueError (naming both) otherwise."""
    if bands.names != NAMES:
        raise ValueError(
            f"the checkpoint's urgency bands {list(bands.names)} are not the ones the database "
            f"holds {list(NAMES)}: a new band needs a migration first"
        )
    return bands


def for_thresholds(thresholds: Mapping[str, float]) -> Bands:
    return checked(checkpoint_bands.from_thresholds(thresholds))


def for_checkpoint(model_dir: Path | None) -> Bands:
    """The bands of the configured checkpoint (None: the shipped one)."""
    return BANDS if model_dir is None else checked(checkpoint_bands.read(model_dir))


def rank(name: str) -> int:
    return BANDS.rank(name)


def more_severe(a: str, b: str) -> str:
    return BANDS.more_severe(a, b)


def band_at_rank(rank_: int) -> str:
    """The band of a rank that ageing may have pushed past the most severe one (below 0)."""
    return NAMES[min(max(rank_, 0), len(NAMES) - 1)]


def rank_sql(column: str) -> str:
    """SQL for the rank of the band in `column` (0 = most severe; an unknown name -1, as `rank` says)."""
    whens = " ".join(f"WHEN '{name}' THEN {i}" for i, name in enumerate(NAMES))
    return f"(CASE {column} {whens} ELSE -1 END)"


@dataclass(frozen=True)
class BandWords:
    """What a person reads about a band: never a number, never a diagnosis."""

    label: str
    # The patient app: what the band means, then what happens while the case waits.
    finding: str
    while_waiting: str
    # The patient's explanation of the urgency policy (triage/urgency_policy.py): their place in the queue.
    queue_place: str
    # The triage view's guidance (triage/policy.py) once a photo score has decided.
    guidance: str


SEEK_CARE = "If the spot bleeds, grows quickly or you feel unwell, seek care in person today."

WORDS: dict[str, BandWords] = {
    "urgent": BandWords(
        "Urgent",
        "Your photos suggest this should be looked at quickly.",
        "A doctor will review it as a priority.",
        "A doctor will look at your case first.",
        f"Your case has been marked for priority review. A doctor will look at it first. {SEEK_CARE}",
    ),
    "soon": BandWords(
        "Soon",
        "Your photos suggest this should be looked at soon.",
        "A doctor will review it shortly.",
        "A doctor will look at your case ahead of routine cases.",
        "Your case will be reviewed soon. A doctor will look at it ahead of routine cases.",
    ),
    "routine": BandWords(
        "Routine",
        "Nothing in your photos suggests it needs to be rushed.",
        "A doctor will still review it.",
        "Your case is in the queue for a routine review; a doctor will look at it and reply here.",
        "Your case is in the queue for a routine review. A doctor will look at it and reply here.",
    ),
}


def document(bands: Bands) -> dict[str, Any]:
    """GET /api/v1/triage/bands: the bands from most to least severe, with their thresholds and words."""
    return {
        "bands": [
            {"name": name, "rank": i, "threshold": bands.threshold(name), **asdict(WORDS[name])}
            for i, name in enumerate(bands.names)
        ]
    }
