"""Photo intake and validation, the photo gate, the job stream, the batching worker, the weighted 7-point checklist
and the urgency policy."""

from __future__ import annotations

from pathlib import Path

from store.migrations import Migration, discover


def migrations() -> list[Migration]:
    return discover("triage", Path(__file__).parent / "migrations")
