"""What the triage side may do to the queue: store a consultation's score; the urgency policy sets its band.

The triage worker may not import chat; the composition root (web/app.py) hands it
`apply_triage_result` and a `chat.realtime.QueueNotifier`.
"""
from __future__ import annotations

import uuid

import asyncpg

from chat.store import consultations, waiting_queue
from store.errors import unprocessable

URGENCIES = tuple(waiting_queue.BAND_RANK)


async def apply_triage_result(conn: asyncpg.Connection, consultation_id: uuid.UUID, *, image_band: str,
                              p_malignant: float, model_version: str, trusted: bool,
                              gate: dict | None = None) -> None:
    """Records a consultation's deciding photo score, its band and whether the photo gate trusted it; the
    case's band becomes the checklist band raised by a trusted image band (triage/urgency_policy.py).

    Call it inside the transaction that stores the score, then `QueueNotifier.queue_changed("scored", id)`
    after commit so every console re-sorts. An unknown consultation is ignored (it may have been deleted).
    """
    if image_band not in URGENCIES:
        raise unprocessable("invalid_field", f"'image_band' must be one of: {', '.join(URGENCIES)}.",
                            field="image_band")
    if not 0.0 <= p_malignant <= 1.0:
        raise unprocessable("invalid_field", "'p_malignant' must be between 0 and 1.", field="p_malignant")
    await consultations.apply_triage_result_txn(conn, consultation_id=consultation_id, image_band=image_band,
                                                p_malignant=p_malignant, model_version=model_version, trusted=trusted,
                                                gate=gate)
