"""Authorisation helpers every handler uses: who is calling, and may their role do this."""

from __future__ import annotations

from aiohttp import web

from auth.context import AUTH_SERVICE, PRINCIPAL
from auth.principal import Principal
from store.errors import forbidden, unauthorized


async def authenticate(request: web.Request) -> Principal:
    """The caller behind the request's Bearer token (checked once per request); 401 otherwise."""
    principal = request.get(PRINCIPAL)
    if principal is not None:
        return principal
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        error = unauthorized("missing_token", "Send an access token: 'Authorization: Bearer <token>'.")
        error.headers["WWW-Authenticate"] = "Bearer"
        raise error
    principal = await request.config_dict[AUTH_SERVICE].verify_access_token(token.strip())
    request[PRINCIPAL] = principal
    return principal


async def require_role(request: web.Request, *roles: str) -> Principal:
    """The caller, if their role is one of `roles`; a pending doctor may do nothing clinical."""
    principal = await authenticate(request)
    if principal.role not in roles:
        raise forbidden("forbidden_role", f"This needs the role {' or '.join(roles)}.")
    refuse_unapproved_doctor(principal)
    return principal


def refuse_unapproved_doctor(principal: Principal) -> None:
    """The one rule for a doctor account an admin has not approved yet: nothing clinical, 403 `doctor_not_approved`.

    Other roles pass: what they may do is for their role's checks to say. Call it before looking
    anything up, so the answer is the same whether or not the thing asked for exists.
    """
    if principal.role == "doctor" and not principal.approved:
        raise forbidden("doctor_not_approved", "An admin has not approved this doctor account yet.")
