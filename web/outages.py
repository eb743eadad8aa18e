"""Requests that need a store which is down answer 503 `store_unavailable` with Retry-After, never 500."""

from __future__ import annotations

from aiohttp import web

from store.connections import Stores
from store.errors import DomainError
from store.outages import store_unavailable


def outage_middleware(stores: Stores):
    """Inside the problem middleware: it turns the DomainError raised here into problem JSON."""

    @web.middleware
    async def middleware(request: web.Request, handler):
        try:
            return await handler(request)
        except (web.HTTPException, DomainError):
            raise
        except Exception as exc:
            kind = stores.report_outage(exc)
            if kind is None:
                raise
            raise store_unavailable(kind) from None

    return middleware
