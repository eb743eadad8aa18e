"""Photo intake and validation, the triage job stream, the batching worker and the score-to-urgency policy."""
from __future__ import annotations

from pathlib import Path

from store.migrations import Migration, discover


def migrations() -> list[Migration]:
    return discover("triage", Path(__file__).parent / "migrations")
