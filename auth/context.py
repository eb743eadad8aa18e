"""What the web layer attaches to each request for the domains: its id (for the audit log) and who is calling."""
from __future__ import annotations

from aiohttp import web

REQUEST_ID = web.RequestKey("request_id", str)
