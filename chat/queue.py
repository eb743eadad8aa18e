"""What the triage side may do to the queue: a consultation's score has landed; the urgency policy sets its band.

The triage worker may not import chat; the composition root (web/app.py) hands it
`apply_triage_result` and a `chat.realtime.QueueNotifier`.
"""

from __future__ import annotations

import uuid

import asyncpg

from chat.store import consultations
from store.errors import unprocessable
from triage import bands
from triage.policy import ConsultationTriage


async def apply_triage_result(
    conn: asyncpg.Connection, consultation_id: uuid.UUID, summary: ConsultationTriage
) -> None:
    """The case's band becomes the checklist band raised by the deciding photo's band (`summary.urgency`) when
    the photo gate trusted its score (triage/urgency_policy.py). The score itself stays in triage's table, its
    one home. It is triage's `OnScored` hook: the composition root lends it to the worker as it is.

    Call it inside the transaction that stores the score (triage's store does), then
    `QueueNotifier.queue_changed("scored", id)` after commit so every console re-sorts. An unknown
    consultation is ignored (it may have been deleted).
    """
    if summary.urgency not in bands.NAMES:
        raise unprocessable(
            "invalid_field", f"'image_band' must be one of: {', '.join(bands.NAMES)}.", field="image_band"
        )
    if not 0.0 <= summary.p_malignant <= 1.0:
        raise unprocessable("invalid_field", "'p_malignant' must be between 0 and 1.", field="p_malignant")
    await consultations.set_band_from_score_txn(conn, consultation_id, summary)
