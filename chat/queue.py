"""What the triage side may do to the queue: store a consultation's score (its urgency band then orders it).

The triage worker may not import chat; the composition root (web/app.py) hands it
`apply_triage_result` and a `chat.realtime.QueueNotifier`.
"""
from __future__ import annotations

import uuid

import asyncpg

from chat import store
from store.errors import unprocessable

URGENCIES = tuple(store.BAND_RANK)


async def apply_triage_result(conn: asyncpg.Connection, consultation_id: uuid.UUID, *, urgency: str,
                              p_malignant: float, model_version: str) -> None:
    """Records the band and calibrated score of a consultation (until then it is 'awaiting score', routine).

    Call it inside the transaction that stores the score, then `QueueNotifier.queue_changed("scored", id)`
    after commit so every console re-sorts. An unknown consultation is ignored (it may have been deleted).
    """
    if urgency not in URGENCIES:
        raise unprocessable("invalid_field", f"'urgency' must be one of: {', '.join(URGENCIES)}.", field="urgency")
    if not 0.0 <= p_malignant <= 1.0:
        raise unprocessable("invalid_field", "'p_malignant' must be between 0 and 1.", field="p_malignant")
    await store.apply_triage_result_txn(conn, consultation_id=consultation_id, urgency=urgency,
                                        p_malignant=p_malignant, model_version=model_version)
