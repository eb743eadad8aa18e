"""HTTP routes for consultations, the queue, messages, appointments and doctors' presence (see chat/openapi.json)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from auth.authz import authenticate, require_role
from auth.context import audit_context
from chat import validation
from chat.outcomes import validation as outcome_validation
from chat.service import ChatService
from store.errors import unprocessable
from store.http_input import path_id, read_json
from store.payloads import get_choice, get_int, get_query_int


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


class ChatRoutes:
    def __init__(self, service: ChatService, max_json_bytes: int) -> None:
        self._service = service
        self._max_json_bytes = max_json_bytes

    def register_on(self, app: web.Application) -> None:
        add = app.router
        add.add_post("/api/v1/consultations", self.open_consultation)
        add.add_get("/api/v1/consultations", self.list_consultations)
        add.add_get("/api/v1/consultations/{consultation_id}", self.get_consultation)
        add.add_post("/api/v1/consultations/{consultation_id}/cancel", self.cancel)
        add.add_post("/api/v1/consultations/{consultation_id}/take", self.take)
        add.add_post("/api/v1/consultations/{consultation_id}/transfer", self.transfer)
        add.add_post("/api/v1/consultations/{consultation_id}/resolve", self.resolve)
        add.add_get("/api/v1/consultations/{consultation_id}/messages", self.messages)
        add.add_post("/api/v1/consultations/{consultation_id}/messages", self.send_message)
        add.add_post("/api/v1/consultations/{consultation_id}/appointments", self.propose_appointment)
        add.add_get("/api/v1/queue", self.queue)
        add.add_post("/api/v1/queue/take-next", self.take_next)
        add.add_get("/api/v1/appointments", self.list_appointments)
        add.add_post("/api/v1/appointments/{appointment_id}/confirm", self.confirm_appointment)
        add.add_post("/api/v1/appointments/{appointment_id}/decline", self.decline_appointment)
        add.add_get("/api/v1/doctors/me", self.doctor_status)
        add.add_put("/api/v1/doctors/me/availability", self.set_availability)
        add.add_put("/api/v1/doctors/{doctor_id}/capacity", self.set_capacity)

    async def _body(self, request: web.Request) -> dict[str, Any]:
        return await read_json(request, self._max_json_bytes)

    async def _optional_body(self, request: web.Request) -> dict[str, Any]:
        """The body for routes whose fields are all optional: none at all means {}."""
        return await self._body(request) if request.body_exists else {}

    async def open_consultation(self, request: web.Request) -> web.Response:
        principal = await require_role(request, "patient")
        new = validation.new_consultation(await self._body(request))
        return _json(await self._service.open_consultation(principal, audit_context(request), new), 201)

    async def list_consultations(self, request: web.Request) -> web.Response:
        principal = await authenticate(request)
        state = get_choice(dict(request.query), "state", validation.STATES, required=False)
        limit = get_query_int(request.query, "limit", minimum=1, maximum=validation.MAX_PAGE, default=50)
        rows = await self._service.list_consultations(principal, audit_context(request), state, limit)
        return _json({"consultations": rows})

    async def get_consultation(self, request: web.Request) -> web.Response:
        principal = await authenticate(request)
        consultation_id = path_id(request, "consultation_id")
        return _json(await self._service.get_consultation(principal, audit_context(request), consultation_id))

    async def cancel(self, request: web.Request) -> web.Response:
        principal = await require_role(request, "patient")
        consultation_id = path_id(request, "consultation_id")
        reason = validation.optional_reason(await self._optional_body(request))
        return _json(await self._service.cancel(principal, audit_context(request), consultation_id, reason))

    async def take(self, request: web.Request) -> web.Response:
        principal = await require_role(request, "doctor")
        consultation_id = path_id(request, "consultation_id")
        return _json(await self._service.take(principal, audit_context(request), consultation_id))

    async def take_next(self, request: web.Request) -> web.Response:
        principal = await require_role(request, "doctor")
        return _json(await self._service.take(principal, audit_context(request), None))

    async def transfer(self, request: web.Request) -> web.Response:
        principal = await require_role(request, "doctor")
        consultation_id = path_id(request, "consultation_id")
        reason, to_doctor_id = validation.transfer(await self._body(request))
        return _json(
            await self._service.transfer(principal, audit_context(request), consultation_id, reason, to_doctor_id)
        )

    async def resolve(self, request: web.Request) -> web.Response:
        principal = await require_role(request, "doctor")
        consultation_id = path_id(request, "consultation_id")
        payload = await self._body(request)
        outcome, note = validation.resolution(payload)
        diagnosis = outcome_validation.working_diagnosis(payload)
        return _json(
            await self._service.resolve(principal, audit_context(request), consultation_id, outcome, note, diagnosis)
        )

    async def messages(self, request: web.Request) -> web.Response:
        principal = await authenticate(request)
        consultation_id = path_id(request, "consultation_id")
        after_seq = get_query_int(request.query, "after_seq", minimum=0, maximum=2**62)
        before_seq = get_query_int(request.query, "before_seq", minimum=1, maximum=2**62)
        if after_seq is not None and before_seq is not None:
            raise unprocessable("invalid_field", "Give 'after_seq' or 'before_seq', not both.", field="before_seq")
        limit = get_query_int(request.query, "limit", minimum=1, maximum=validation.MAX_PAGE, default=50)
        messages, has_more = await self._service.messages.history(
            principal, audit_context(request), consultation_id, after_seq=after_seq, before_seq=before_seq, limit=limit
        )
        return _json({"messages": messages, "has_more": has_more})

    async def send_message(self, request: web.Request) -> web.Response:
        principal = await require_role(request, "patient", "doctor")
        consultation_id = path_id(request, "consultation_id")
        client_msg_id, body = validation.message_fields(
            await self._body(request), self._service.config.max_message_chars
        )
        message, duplicate = await self._service.messages.send(
            principal, audit_context(request), consultation_id, client_msg_id, body
        )
        return _json({"message": message, "duplicate": duplicate})

    async def propose_appointment(self, request: web.Request) -> web.Response:
        principal = await require_role(request, "doctor")
        consultation_id = path_id(request, "consultation_id")
        slots = validation.slots(await self._body(request))
        return _json(
            await self._service.appointments.propose(principal, audit_context(request), consultation_id, slots), 201
        )

    async def queue(self, request: web.Request) -> web.Response:
        principal = await require_role(request, "doctor")
        return _json({"queue": await self._service.queue(principal, audit_context(request))})

    async def list_appointments(self, request: web.Request) -> web.Response:
        principal = await authenticate(request)
        return _json({"appointments": await self._service.appointments.list_for(principal, audit_context(request))})

    async def confirm_appointment(self, request: web.Request) -> web.Response:
        principal = await require_role(request, "patient")
        appointment_id = path_id(request, "appointment_id")
        slot_id = validation.get_uuid(await self._body(request), "slot_id")
        return _json(
            await self._service.appointments.confirm(principal, audit_context(request), appointment_id, slot_id)
        )

    async def decline_appointment(self, request: web.Request) -> web.Response:
        principal = await require_role(request, "patient")
        appointment_id = path_id(request, "appointment_id")
        reason = validation.optional_reason(await self._optional_body(request))
        return _json(
            await self._service.appointments.decline(principal, audit_context(request), appointment_id, reason)
        )

    async def doctor_status(self, request: web.Request) -> web.Response:
        principal = await require_role(request, "doctor")
        return _json(await self._service.doctor_status(principal))

    async def set_availability(self, request: web.Request) -> web.Response:
        principal = await require_role(request, "doctor")
        availability = get_choice(await self._body(request), "availability", validation.AVAILABILITIES)
        return _json(await self._service.set_availability(principal, audit_context(request), availability))

    async def set_capacity(self, request: web.Request) -> web.Response:
        principal = await require_role(request, "admin")
        doctor_id = path_id(request, "doctor_id")
        capacity = get_int(await self._body(request), "capacity", minimum=0, maximum=20)
        return _json(await self._service.set_capacity(principal, audit_context(request), doctor_id, capacity))
