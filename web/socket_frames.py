"""Malformed Socket.IO traffic is the client's fault: a warning a minute, not a traceback per frame.

engineio raises ValueError (or UnicodeDecodeError) from inside its websocket loop when a frame
is not a packet; without this the problem middleware logs each one as an unhandled error.
"""

from __future__ import annotations

import logging

from aiohttp import web

from web.logs import RateLimit

log = logging.getLogger(__name__)
log.addFilter(RateLimit())

SOCKETIO_PATH = "/socket.io/"


@web.middleware
async def malformed_frame_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except ValueError as exc:  # UnicodeDecodeError is one
        if not request.path.startswith(SOCKETIO_PATH):
            raise
        log.warning(
            "malformed Socket.IO traffic dropped",
            extra={"error": f"{type(exc).__name__}: {exc}", "client_ip": request.remote},
        )
        return web.Response(status=400)
