"""HTTP routes for outcomes (see chat/outcomes/openapi.json): a case's outcome record, histopathology results,
the cases waiting for one, and the performance figures."""

from __future__ import annotations

from aiohttp import web

from auth.authz import authenticate, require_role
from auth.context import audit_context
from chat.outcomes import validation
from chat.outcomes.service import OutcomesService
from store.http_input import path_id, read_json
from store.payloads import get_query_int


class OutcomeRoutes:
    def __init__(self, service: OutcomesService, max_json_bytes: int) -> None:
        self._service = service
        self._max_json_bytes = max_json_bytes

    def register_on(self, app: web.Application) -> None:
        add = app.router
        add.add_get("/api/v1/consultations/{consultation_id}/outcome", self.outcome)
        add.add_post("/api/v1/consultations/{consultation_id}/histopathology", self.add_histopathology)
        add.add_get("/api/v1/outcomes/awaiting-histopathology", self.awaiting)
        add.add_get("/api/v1/outcomes/performance", self.performance)

    async def outcome(self, request: web.Request) -> web.Response:
        principal = await authenticate(request)
        consultation_id = path_id(request, "consultation_id")
        return web.json_response(await self._service.outcome(principal, audit_context(request), consultation_id))

    async def add_histopathology(self, request: web.Request) -> web.Response:
        principal = await authenticate(request)
        consultation_id = path_id(request, "consultation_id")
        entry = validation.histopathology(await read_json(request, self._max_json_bytes))
        body = await self._service.add_histopathology(principal, audit_context(request), consultation_id, entry)
        return web.json_response(body, status=201)

    async def awaiting(self, request: web.Request) -> web.Response:
        principal = await require_role(request, "doctor", "admin")
        limit = get_query_int(request.query, "limit", minimum=1, maximum=500, default=100)
        cases = await self._service.awaiting(principal, audit_context(request), limit)
        return web.json_response({"cases": cases})

    async def performance(self, request: web.Request) -> web.Response:
        principal = await require_role(request, "doctor", "admin")
        return web.json_response(await self._service.performance(principal, audit_context(request)))
