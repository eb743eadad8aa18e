"""The chat domain's own actor: changes it makes by itself (automatic pairing, a score landing) are audited as it."""

from __future__ import annotations

from auth.audit import AuditContext

SYSTEM = AuditContext(actor=None, request_id="chat-auto-pairing")
