"""Refresh-token rotation rules: hashing, the derived successor, when a reuse is theft and when it is a tab.

A refresh token is single-use. Presenting a spent one is theft, except within the grace
window after its rotation while its successor is unused (two tabs refreshing at once):
then it gets that same successor. Successors are derived from the token with a server
key, so the server can hand out the same one again without ever storing a token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

from auth import store
from store.errors import DomainError, unauthorized


def hash_refresh_token(token: str) -> bytes:
    # The token is 256 random bits, so a fast hash is enough: there is nothing to guess.
    return hashlib.sha256(token.encode()).digest()


def successor(secret: bytes, refresh_token: str) -> str:
    """The token that replaces `refresh_token`: unguessable without `secret`, the same every time."""
    mac = hmac.new(secret, refresh_token.encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


def refresh_failure(row: store.RefreshTokenRow | None, user: store.User | None) -> DomainError | None:
    """Why this token may not be rotated now, or None."""
    if row is None:
        return unauthorized("invalid_refresh_token", "This refresh token is not known.")
    if row.family_revoked_at is not None:
        return unauthorized("invalid_refresh_token", "This session has been signed out.")
    if row.rotated_at is not None:
        return unauthorized(
            "refresh_token_reused", "This refresh token was already used; the session has been revoked for safety."
        )
    if row.expires_at <= datetime.now(UTC):
        return unauthorized("invalid_refresh_token", "This refresh token has expired; sign in again.")
    if user is None or user.status == "disabled":
        return unauthorized("invalid_refresh_token", "This account cannot sign in.")
    return None


async def within_grace(
    conn, row: store.RefreshTokenRow, user: store.User | None, next_token: str, grace_s: int
) -> bool:
    """True when a spent token's reuse is a second tab's: rotated moments ago, its successor still unused."""
    now = datetime.now(UTC)
    return (
        row.rotated_at is not None
        and row.rotated_at + timedelta(seconds=grace_s) >= now
        and row.expires_at > now
        and user is not None
        and user.status != "disabled"
        and await store.refresh_token_is_live(conn, hash_refresh_token(next_token), row.family_id)
    )
