"""Who is calling: the verified identity every handler authorises against."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

ROLES = ("patient", "doctor", "admin")


@dataclass(frozen=True)
class Principal:
    user_id: uuid.UUID
    role: str  # "patient" | "doctor" | "admin"
    approved: bool  # False only for a pending doctor
    token_id: str
    expires_at: datetime
    # The sign-in this token belongs to (its refresh family); None for tokens minted outside a sign-in.
    session_id: uuid.UUID | None = None
