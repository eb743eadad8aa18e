"""What the web layer attaches to each request for the domains (its id, who is calling), and the one place a
request becomes the audit context that handlers pass into domain functions (which never see aiohttp)."""

from __future__ import annotations

from aiohttp import web

from auth.audit import AuditContext
from auth.principal import Principal
from auth.service import AuthService

REQUEST_ID = web.RequestKey("request_id", str)
PRINCIPAL = web.RequestKey("principal", Principal)
AUTH_SERVICE = web.AppKey("auth_service", AuthService)


def audit_context(request: web.Request) -> AuditContext:
    """The caller (once authenticated; None before), their address and the request's id."""
    return AuditContext(request.get(PRINCIPAL), request.remote, request.get(REQUEST_ID))
