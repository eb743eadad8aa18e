"""Real-time consultations: the triage queue, doctor pairing, chat, presence and appointments over Socket.IO."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import socketio
from aiohttp import web

from auth.service import AuthService
from chat import contract
from chat.broadcast import QueueBroadcaster
from chat.messages import MessageWriter
from chat.namespace import ConsultationNamespace
from chat.presence import DoctorPresence
from chat.realtime import QUEUE_SIGNAL, SESSIONS_SIGNAL, announce_revoked_sessions, create_server
from chat.routes import ChatRoutes
from chat.service import ChatService
from chat.socketio_adapter import disconnect_all, start_manager
from store.connections import Stores
from store.migrations import Migration, discover
from store.outages import repeat_every

log = logging.getLogger(__name__)

CHAT_SERVICE = web.AppKey("chat_service", ChatService)
SOCKETIO_SERVER = web.AppKey("socketio_server", socketio.AsyncServer)


def migrations() -> list[Migration]:
    return discover("chat", Path(__file__).parent / "migrations")


def setup(app: web.Application, stores: Stores, settings, auth_service: AuthService) -> ChatService:
    """Attaches Socket.IO and the consultation routes; background work starts once the stores are open."""
    config = settings.chat
    server = create_server(config, stores)
    writer = MessageWriter(stores, batch_max=config.message_batch_max)
    service = ChatService(stores, config, server, writer)
    presence = DoctorPresence(stores, config, service)
    broadcaster = QueueBroadcaster(stores, config, server)
    server.manager.signal_handlers[QUEUE_SIGNAL] = broadcaster.on_signal
    namespace = ConsultationNamespace(service, auth_service, presence, broadcaster, stores)
    server.manager.signal_handlers[SESSIONS_SIGNAL] = namespace.sessions.close_revoked_sessions
    auth_service.revocation_listeners.append(functools.partial(announce_revoked_sessions, server))
    server.register_namespace(namespace)
    server.attach(app)
    ChatRoutes(service, settings.max_json_bytes).register_on(app)
    _serve_contract(app, config.max_message_chars)
    app[CHAT_SERVICE] = service
    app[SOCKETIO_SERVER] = server

    async def background(app: web.Application) -> AsyncIterator[None]:
        # Listen to the other nodes from the start, not from this node's first connection.
        start_manager(server)
        writer.start()
        presence.start()
        sweeper = asyncio.create_task(_sweep_revoked_sessions(namespace, config.revoked_session_sweep_s))
        yield
        sweeper.cancel()
        await asyncio.gather(sweeper, return_exceptions=True)
        await presence.stop()
        await broadcaster.stop()
        await writer.stop()
        await server.manager.close()

    async def disconnect_clients(app: web.Application) -> None:
        # Before aiohttp waits for open connections: otherwise every websocket holds a
        # stopping server for its whole shutdown timeout. Clients reconnect to another node.
        await disconnect_all(server)
        await server.shutdown()

    app.cleanup_ctx.append(background)
    app.on_shutdown.append(disconnect_clients)
    return service


def _serve_contract(app: web.Application, max_message_chars: int) -> None:
    body = contract.document_json(max_message_chars)

    async def asyncapi(request: web.Request) -> web.Response:
        return web.Response(text=body, content_type="application/json")

    app.router.add_get("/api/v1/asyncapi.json", asyncapi)


async def _sweep_revoked_sessions(namespace: ConsultationNamespace, interval_s: float) -> None:
    """The signal closes revoked sessions' sockets at once; this catches any signal lost with Redis."""
    # Any failure (a database outage, say) is tried again next round.
    await repeat_every(
        interval_s,
        namespace.sessions.sweep_revoked_sessions,
        logger=log,
        failing="could not check live sockets for revoked sessions; retrying",
        working_again="checking live sockets for revoked sessions again",
    )
