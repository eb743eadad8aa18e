"""A consultation's photo score as chat reads it: from triage's table, the score's one home, never a copy.

Triage writes `triage_consultation_scores` in the transaction that sets the case's band (chat/queue.py),
so a consultation read with `SELECT_SCORED` always shows the score its band was decided on. Chat only
reads the table (ARCHITECTURE.md: chat may read triage's scores), through plain SQL, importing nothing.
"""

from __future__ import annotations

# The score's columns under the names the serializers use (chat/serialize.py), for `consultations c`
# joined with `SCORE_JOIN`; a case with no score yet has NULLs here and score_trusted false.
SCORE_COLUMNS = """s.p_malignant, s.model_version, s.updated_at AS scored_at, s.urgency AS image_band,
    coalesce(s.trusted, false) AS score_trusted, s.gate"""
SCORE_JOIN = "LEFT JOIN triage_consultation_scores s ON s.consultation_id = c.id"

# A consultation and its score; add the WHERE clause (lock with FOR UPDATE OF c: s is the outer join's side).
SELECT_SCORED = f"SELECT c.*, {SCORE_COLUMNS} FROM consultations c {SCORE_JOIN}"


def scored(statement: str) -> str:
    """`statement` (an INSERT or UPDATE of consultations ... RETURNING *) answering with the score's columns."""
    return f"WITH c AS ({statement}) SELECT c.*, {SCORE_COLUMNS} FROM c {SCORE_JOIN}"
