"""Which account a verified OpenID Connect identity signs in to, linking or creating it on first use."""

from __future__ import annotations

import uuid
from dataclasses import replace

import asyncpg

from auth import store
from auth.oidc import VerifiedIdentity


async def account_for(conn: asyncpg.Connection, identity: VerifiedIdentity) -> tuple[store.User, str, list[uuid.UUID]]:
    """The linked account, else the one with the verified email (linked now), else a new patient.

    Returns the account, how it was found (`existing`, `linked`, `linked_password_cleared`,
    `created`) and the sessions revoked on the way. Run inside the caller's transaction.
    """
    user = await store.get_user_by_oidc_identity(conn, identity.issuer, identity.subject)
    if user is not None:
        return user, "existing", []
    user = await store.get_user_by_email(conn, identity.email)
    revoked = []
    if user is None:
        name = "".join(c for c in identity.name or identity.email.split("@")[0] if c.isprintable())[:100]
        user = await store.insert_user(
            conn, email=identity.email, display_name=name, role="patient", status="active", password_hash=None
        )
        outcome = "created"
    elif user.role != "admin" and user.password_hash is not None:
        # Self-registration never proved who owns the address; the provider just did. A password set by
        # whoever registered first may be an attacker's (account pre-hijacking), so it and its sessions
        # go, and the owner signs in through the provider from now on.
        await store.clear_password(conn, user.id)
        revoked = await store.revoke_all_refresh_families(conn, user.id, "oidc_link")
        user = replace(user, password_hash=None)
        outcome = "linked_password_cleared"
    else:
        outcome = "linked"
    await store.link_oidc_identity(conn, identity.issuer, identity.subject, user.id)
    return user, outcome, revoked
