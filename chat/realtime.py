"""The Socket.IO server for consultations: internal signals between nodes, and QueueNotifier.

Every node runs one `socketio.AsyncServer` whose `ChatRedisManager` (chat.pubsub)
carries emits across nodes through Redis. Two internal events ride its shared
channel and never reach a client: `QUEUE_SIGNAL` (the queue changed: each node
recomputes the queue once and pushes it to its own consoles and waiting patients)
`ROOMS_SIGNAL` (put every connection of some users, on whichever node holds
it, into or out of a consultation room) and `SESSIONS_SIGNAL` (close every
connection of some revoked sign-ins).
"""

from __future__ import annotations

import functools
import logging
import uuid
from typing import Any

import socketio

from chat.config import ChatConfig
from chat.pubsub import NAMESPACE, ChatRedisManager
from chat.socketio_adapter import GuardedServer, close_write_only, use_uncompressed_websocket
from store.connections import Stores
from store.payloads import DepthLimitedJson

QUEUE_SIGNAL = "__chat:queue"
ROOMS_SIGNAL = "__chat:rooms"
# Sign-ins were revoked (logout, theft detection, password change, OpenID Connect relink): every
# node closes its sockets of those sessions.
SESSIONS_SIGNAL = "__chat:sessions"
# Nobody ever joins this room: a signal emitted to it reaches no client.
SIGNAL_ROOM = "__chat:signals"
# Doctors' consoles subscribed to the live queue.
QUEUE_ROOM = "queue"


def user_room(user_id: uuid.UUID | str) -> str:
    return f"user:{user_id}"


def consultation_room(consultation_id: uuid.UUID | str) -> str:
    return f"consultation:{consultation_id}"


async def move_local_connections(manager: ChatRedisManager, change: dict[str, Any]) -> None:
    """ROOMS_SIGNAL, on every node: this node's connections of the users enter or leave the room."""
    for user_id in change["user_ids"]:
        for sid, _ in list(manager.get_participants(NAMESPACE, user_room(user_id))):
            # The local-only room change: this handler already runs on every node.
            if change["join"]:
                manager.basic_enter_room(sid, NAMESPACE, change["room"])
            else:
                manager.basic_leave_room(sid, NAMESPACE, change["room"])
    # Not waiting for the room channel's subscription: this runs in the listener that would confirm it.
    # Until it is live (one Redis round trip) another node's push to the room may miss these sockets;
    # what they miss is stored, and clients resync on join.


def _library_logger(name: str) -> logging.Logger:
    logger = logging.getLogger(name)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.ERROR)
    return logger


def create_server(config: ChatConfig, stores: Stores) -> socketio.AsyncServer:
    manager = ChatRedisManager(stores, config.socketio_channel)
    manager.signal_handlers[ROOMS_SIGNAL] = functools.partial(move_local_connections, manager)
    server = GuardedServer(
        async_mode="aiohttp",
        client_manager=manager,
        cors_allowed_origins=list(config.cors_origins) or None,
        max_http_buffer_size=64 * 1024,
        # Event payloads nested too deep are refused before the parser recurses through them.
        json=DepthLimitedJson,
        # Our loggers, not True/False: given a bool, the libraries add a handler of their own that
        # writes raw lines to stderr beside the JSON log. Errors only (a warning-level line per client
        # mistake would flood it); the log configuration rate-limits them.
        logger=_library_logger("socketio.server"),
        engineio_logger=_library_logger("engineio.server"),
    )
    if not config.websocket_compression:
        use_uncompressed_websocket(server)
    return server


class QueueNotifier:
    """Tells every node that the queue changed; usable in the server and from another process (the triage worker)."""

    def __init__(self, emitter: socketio.AsyncServer | socketio.AsyncRedisManager) -> None:
        self._emitter = emitter

    @classmethod
    def write_only(cls, redis_url: str, channel: str) -> QueueNotifier:
        return cls(socketio.AsyncRedisManager(redis_url, channel=channel, write_only=True))

    async def queue_changed(self, reason: str, consultation_id: uuid.UUID | None) -> None:
        payload = {"reason": reason, "consultation_id": str(consultation_id) if consultation_id else None}
        await self._emitter.emit(QUEUE_SIGNAL, payload, room=SIGNAL_ROOM, namespace=NAMESPACE)

    async def close(self) -> None:
        """Closes a write-only notifier's Redis connection (a server's notifier closes with the server)."""
        if isinstance(self._emitter, socketio.AsyncRedisManager):
            await close_write_only(self._emitter)


async def move_users(server: socketio.AsyncServer, user_ids: list[uuid.UUID], room: str, *, join: bool) -> None:
    """Puts every connection of these users, on every node, into (or out of) `room`."""
    change = {"user_ids": [str(u) for u in user_ids], "room": room, "join": join}
    await server.emit(ROOMS_SIGNAL, change, room=SIGNAL_ROOM, namespace=NAMESPACE)


async def announce_revoked_sessions(server: socketio.AsyncServer, session_ids: list[uuid.UUID], reason: str) -> None:
    """Every node closes its connections of these sessions (SocketSessions.close_revoked_sessions)."""
    signal = {"session_ids": [str(s) for s in session_ids], "reason": reason}
    await server.emit(SESSIONS_SIGNAL, signal, room=SIGNAL_ROOM, namespace=NAMESPACE)
