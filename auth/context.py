"""What the web layer attaches to each request for the domains: its id (for the audit log) and who is calling."""
from __future__ import annotations

from aiohttp import web

from auth.principal import Principal

REQUEST_ID = web.RequestKey("request_id", str)
PRINCIPAL = web.RequestKey("principal", Principal)
