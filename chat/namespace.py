"""The Socket.IO event handlers (docs/realtime-api.md): check the payload, call the service, ack the result.

Every client event is acknowledged with `{"ok": true, ...}` or
`{"ok": false, "error": {status, code, detail, field?}}`; a failed event changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import socketio

from auth.audit import AuditContext
from auth.authz import refuse_unapproved_doctor
from auth.principal import Principal
from auth.service import AuthService
from chat import validation
from chat.access import require_clinician
from chat.broadcast import QueueBroadcaster, queue_message
from chat.outcomes import validation as outcome_validation
from chat.presence import DoctorPresence
from chat.realtime import NAMESPACE, QUEUE_ROOM, consultation_room, user_room
from chat.service import ChatService
from chat.socket_sessions import SocketSessions
from store.connections import Stores
from store.errors import (
    DomainError,
    bad_request,
    forbidden,
    unauthorized,
    unprocessable,
)
from store.outages import store_unavailable
from store.payloads import get_bool, get_choice, get_int, get_str

log = logging.getLogger(__name__)

Handler = Callable[[str, Principal, dict[str, Any]], Awaitable[dict[str, Any]]]


class ConsultationNamespace(socketio.AsyncNamespace):
    def __init__(
        self,
        service: ChatService,
        auth_service: AuthService,
        presence: DoctorPresence,
        broadcaster: QueueBroadcaster,
        stores: Stores,
    ) -> None:
        super().__init__(NAMESPACE)
        self._service = service
        # Only to tell a store outage (answered store_unavailable) from a bug.
        self._stores = stores
        self._auth = auth_service
        self._presence = presence
        self._broadcaster = broadcaster
        self.sessions = SocketSessions(self, auth_service)
        self._handlers: dict[str, Handler] = {
            "session:refresh": self._session_refresh,
            "presence:set": self._presence_set,
            "queue:subscribe": self._queue_subscribe,
            "queue:unsubscribe": self._queue_unsubscribe,
            "queue:take": self._queue_take,
            "consultation:join": self._consultation_join,
            "consultation:leave": self._consultation_leave,
            "consultation:transfer": self._consultation_transfer,
            "consultation:resolve": self._consultation_resolve,
            "message:send": self._message_send,
            "message:sync": self._message_sync,
            "typing": self._typing,
            "read": self._read,
            "appointment:propose": self._appointment_propose,
            "appointment:confirm": self._appointment_confirm,
            "appointment:decline": self._appointment_decline,
        }

    # ---- connection lifecycle ---------------------------------------------------------------

    async def on_connect(self, sid: str, environ: dict, auth: Any = None) -> None:
        try:
            await self._connect(sid, environ, auth)
        except socketio.exceptions.ConnectionRefusedError:
            raise
        except Exception as exc:
            kind = self._stores.report_outage(exc)
            if kind is None:
                raise
            self.sessions.close(sid)
            problem = store_unavailable(kind)
            raise socketio.exceptions.ConnectionRefusedError(problem.detail, problem.as_dict()) from None

    async def _connect(self, sid: str, environ: dict, auth: Any) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        if not isinstance(token, str) or not token:
            raise socketio.exceptions.ConnectionRefusedError(
                "authentication required", {"code": "token_missing", "detail": "Send {token} in the auth payload."}
            )
        try:
            principal = await self._auth.verify_access_token(token)
        except DomainError as exc:
            code = "token_expired" if exc.code == "token_expired" else "token_invalid"
            raise socketio.exceptions.ConnectionRefusedError(exc.detail, {"code": code, "detail": exc.detail}) from None
        try:
            refuse_unapproved_doctor(principal)
        except DomainError as exc:
            # The connect refusal's own code (docs/realtime-api.md), as for the token codes above.
            raise socketio.exceptions.ConnectionRefusedError(
                "account pending", {"code": "account_pending", "detail": exc.detail}
            ) from None
        request = environ.get("aiohttp.request")
        self.sessions.open(sid, principal, request.remote if request is not None else None)
        await self.enter_room(sid, user_room(principal.user_id))
        for consultation_id in await self._service.active_consultation_ids(principal.user_id):
            await self.enter_room(sid, consultation_room(consultation_id))
        if principal.role == "doctor":
            await self._presence.connected(principal.user_id, sid)

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        connection = self.sessions.close(sid)
        if connection is None:
            return
        if connection.principal.role == "doctor":
            try:
                await self._presence.disconnected(connection.principal.user_id, sid)
            except Exception:
                # At shutdown the pool may already be closing; presence then lapses by itself.
                log.warning("could not record a doctor's disconnect", exc_info=True)

    # ---- dispatch ---------------------------------------------------------------------------

    async def trigger_event(self, event: str, *args: Any) -> Any:
        if event in ("connect", "disconnect"):
            return await super().trigger_event(event, *args)
        sid, data = args[0], args[1:]
        handler = self._handlers.get(event)
        if handler is None:
            return _error(bad_request("unknown_event", f"There is no event {event!r}."))
        connection = self.sessions.get(sid)
        if connection is None:
            return _error(unauthorized("not_connected", "This connection is not signed in."))
        if connection.revoked:
            return _error(unauthorized("session_revoked", "This session has been signed out."))
        if connection.principal.expires_at <= datetime.now(UTC):
            return _error(unauthorized("token_expired", "The access token has expired; send session:refresh."))
        try:
            payload = validation.event_payload(event, data, self._service.config.max_message_chars)
            result = await handler(sid, connection.principal, payload)
        except DomainError as exc:
            return _error(exc)
        except Exception as exc:
            kind = self._stores.report_outage(exc)
            if kind is not None:
                # Nothing was stored (a message is acked only once committed): the client retries.
                return _error(store_unavailable(kind))
            log.exception("socket event failed", extra={"event": event, "sid": sid})
            return {
                "ok": False,
                "error": {
                    "status": 500,
                    "code": "internal_error",
                    "detail": "Something went wrong on our side; it has been logged.",
                },
            }
        return {"ok": True, **result}

    def _ctx(self, sid: str) -> AuditContext:
        return self.sessions.get(sid).ctx

    # ---- handlers ---------------------------------------------------------------------------

    async def _session_refresh(self, sid: str, principal: Principal, payload: dict) -> dict:
        fresh = await self._auth.verify_access_token(get_str(payload, "token", max_len=8192))
        if fresh.user_id != principal.user_id:
            raise unprocessable("invalid_field", "The new token belongs to another account.", field="token")
        self.sessions.renew(sid, fresh)
        return {"expires_at": fresh.expires_at.isoformat()}

    async def _presence_set(self, sid: str, principal: Principal, payload: dict) -> dict:
        availability = get_choice(payload, "availability", validation.AVAILABILITIES)
        return {"doctor": await self._service.set_availability(principal, self._ctx(sid), availability)}

    async def _queue_subscribe(self, sid: str, principal: Principal, payload: dict) -> dict:
        require_clinician(principal)
        queue = await self._service.queue(principal, self._ctx(sid))
        await self.enter_room(sid, QUEUE_ROOM)
        snap = queue_message(await self._broadcaster.snapshot())
        return {"queue": queue, "doctors": snap["doctors"]}

    async def _queue_unsubscribe(self, sid: str, principal: Principal, payload: dict) -> dict:
        await self.leave_room(sid, QUEUE_ROOM)
        return {}

    async def _queue_take(self, sid: str, principal: Principal, payload: dict) -> dict:
        consultation_id = validation.get_uuid(payload, "consultation_id", required=False)
        return {"consultation": await self._service.take(principal, self._ctx(sid), consultation_id)}

    async def _consultation_join(self, sid: str, principal: Principal, payload: dict) -> dict:
        consultation_id = validation.get_uuid(payload, "consultation_id")
        after_seq = get_int(payload, "after_seq", required=False, minimum=0, default=0)
        consultation, messages, has_more = await self._service.join_consultation(
            principal,
            self._ctx(sid),
            consultation_id,
            after_seq,
            enter_room=lambda: self.enter_room(sid, consultation_room(consultation_id)),
        )
        return {"consultation": consultation, "messages": messages, "has_more": has_more}

    async def _consultation_leave(self, sid: str, principal: Principal, payload: dict) -> dict:
        await self.leave_room(sid, consultation_room(validation.get_uuid(payload, "consultation_id")))
        return {}

    async def _consultation_transfer(self, sid: str, principal: Principal, payload: dict) -> dict:
        consultation_id = validation.get_uuid(payload, "consultation_id")
        reason, to_doctor_id = validation.transfer(payload)
        return {
            "consultation": await self._service.transfer(
                principal, self._ctx(sid), consultation_id, reason, to_doctor_id
            )
        }

    async def _consultation_resolve(self, sid: str, principal: Principal, payload: dict) -> dict:
        consultation_id = validation.get_uuid(payload, "consultation_id")
        outcome, note = validation.resolution(payload)
        diagnosis = outcome_validation.working_diagnosis(payload)
        return {
            "consultation": await self._service.resolve(
                principal, self._ctx(sid), consultation_id, outcome, note, diagnosis
            )
        }

    async def _message_send(self, sid: str, principal: Principal, payload: dict) -> dict:
        consultation_id = validation.get_uuid(payload, "consultation_id")
        client_msg_id, body = validation.message_fields(payload, self._service.config.max_message_chars)
        message, duplicate = await self._service.messages.send(
            principal, self._ctx(sid), consultation_id, client_msg_id, body, sender_sid=sid
        )
        return {"message": message, "duplicate": duplicate}

    async def _message_sync(self, sid: str, principal: Principal, payload: dict) -> dict:
        consultation_id = validation.get_uuid(payload, "consultation_id")
        after_seq = get_int(payload, "after_seq", minimum=0)
        messages, has_more = await self._service.messages.history(
            principal,
            self._ctx(sid),
            consultation_id,
            after_seq=after_seq,
            before_seq=None,
            limit=validation.page_limit(payload, 200),
        )
        return {"messages": messages, "has_more": has_more}

    async def _typing(self, sid: str, principal: Principal, payload: dict) -> dict:
        consultation_id = validation.get_uuid(payload, "consultation_id")
        typing = get_bool(payload, "typing")
        room = consultation_room(consultation_id)
        # Only sockets let into the room (checked on join, or on connect/assignment) may signal in it.
        if room not in self.rooms(sid):
            raise forbidden("not_in_room", "Join the consultation before sending typing indicators.")
        await self.emit(
            "typing",
            {"consultation_id": str(consultation_id), "user_id": str(principal.user_id), "typing": typing},
            room=room,
            skip_sid=sid,
        )
        return {}

    async def _read(self, sid: str, principal: Principal, payload: dict) -> dict:
        consultation_id = validation.get_uuid(payload, "consultation_id")
        seq = get_int(payload, "seq", minimum=0)
        return {"read_seq": await self._service.messages.mark_read(principal, consultation_id, seq)}

    async def _appointment_propose(self, sid: str, principal: Principal, payload: dict) -> dict:
        consultation_id = validation.get_uuid(payload, "consultation_id")
        slots = validation.slots(payload)
        return {
            "appointment": await self._service.appointments.propose(principal, self._ctx(sid), consultation_id, slots)
        }

    async def _appointment_confirm(self, sid: str, principal: Principal, payload: dict) -> dict:
        appointment_id = validation.get_uuid(payload, "appointment_id")
        slot_id = validation.get_uuid(payload, "slot_id")
        return {
            "appointment": await self._service.appointments.confirm(principal, self._ctx(sid), appointment_id, slot_id)
        }

    async def _appointment_decline(self, sid: str, principal: Principal, payload: dict) -> dict:
        appointment_id = validation.get_uuid(payload, "appointment_id")
        reason = validation.optional_reason(payload)
        return {
            "appointment": await self._service.appointments.decline(principal, self._ctx(sid), appointment_id, reason)
        }


def _error(exc: DomainError) -> dict[str, Any]:
    return {"ok": False, "error": {"status": exc.status, "code": exc.code, "detail": exc.detail, **exc.extra}}
