"""Every use chat makes of python-socketio / python-engineio internals (private names), so an upgrade breaks here.

No other module names a private attribute of either library: tests/test_chat_socketio_adapter.py
checks that every internal used here still exists with the shape relied on, and that no
module under chat/ or web/ reaches one directly; setup.cfg pins both libraries to the tested range.

- `GuardedServer`: a client can no longer wedge its connection with a malformed packet.
  Events carry JSON only, so a binary event is answered with `binary_not_supported` and
  its attachments are dropped (stock python-socketio would swallow the next packets as
  attachments when fewer arrive than announced); an event packet that is not JSON, or
  whose data is not `[name, ...]`, is answered with `malformed_packet` when it has an
  ack id. Oversized frames never get here: the transport closes the connection (1009).
- `UncompressedWebSocket`: the aiohttp websocket without permessage-deflate.
- `RedisManagerAdapter`: the stock Redis manager with the private hooks chat.pubsub
  builds on routed to methods of our own names, plus `send_event` (one encoding for many
  sockets); `start_manager`, `disconnect_all` and `close_write_only` for the rest.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import socketio
from aiohttp.web import WebSocketResponse
from engineio import packet as eio_packet
from engineio.async_drivers.aiohttp import WebSocket as EngineIoWebSocket
from socketio import packet

log = logging.getLogger(__name__)

# Socket.IO packet types whose data an ack answers: EVENT (2) and BINARY_EVENT (5).
_EVENT_HEADER = re.compile(r"^[25](?:\d+-)?(?:(/[^,]*),)?(\d+)")


def _error_ack(status: int, code: str, detail: str) -> dict[str, Any]:
    return {"ok": False, "error": {"status": status, "code": code, "detail": detail}}


BINARY_NOT_SUPPORTED = _error_ack(
    400, "binary_not_supported", "Events carry JSON only; send photos over HTTP (see docs/realtime-api.md)."
)
MALFORMED_PACKET = _error_ack(400, "malformed_packet", "The packet is not a Socket.IO event: [name, payload].")


class GuardedServer(socketio.AsyncServer):
    """The stock server, refusing binary events and answering malformed event packets (see the module doc)."""

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        if isinstance(data, bytes):
            return  # an attachment of a refused binary packet (or one nobody announced): dropped
        if data[:1] in (str(packet.BINARY_EVENT), str(packet.BINARY_ACK)):
            await self._answer_unparsed(eio_sid, data, BINARY_NOT_SUPPORTED)
            return
        try:
            await super()._handle_eio_message(eio_sid, data)
        except ValueError:
            await self._answer_unparsed(eio_sid, data, MALFORMED_PACKET)

    async def _handle_event(self, eio_sid: str, namespace: str | None, id: int | None, data: Any) -> None:
        if not (isinstance(data, list) and data and isinstance(data[0], str)):
            if id is not None:
                await self._ack(eio_sid, namespace, id, MALFORMED_PACKET)
            return
        await super()._handle_event(eio_sid, namespace, id, data)

    async def _answer_unparsed(self, eio_sid: str, data: str, answer: dict[str, Any]) -> None:
        header = _EVENT_HEADER.match(data)
        if header is None:
            log.info("dropped a malformed Socket.IO packet without an ack id")
            return
        await self._ack(eio_sid, header.group(1), int(header.group(2)), answer)

    async def _ack(self, eio_sid: str, namespace: str | None, id: int, answer: dict[str, Any]) -> None:
        namespace = namespace or "/"
        if self.manager.sid_from_eio_sid(eio_sid, namespace) is None:
            return  # not connected to that namespace: nobody to answer
        await self._send_packet(eio_sid, self.packet_class(packet.ACK, namespace=namespace, data=[answer], id=id))


class UncompressedWebSocket(EngineIoWebSocket):
    """engineio's aiohttp websocket, but refusing permessage-deflate (aiohttp accepts it by default).

    Compressing every frame costs the server CPU on each send; chat frames are small,
    so by default we leave it off (SKINDOC_WEBSOCKET_COMPRESSION=true turns it on).
    """

    async def __call__(self, environ):
        request = environ["aiohttp.request"]
        self._sock = WebSocketResponse(max_msg_size=self.server.max_http_buffer_size, compress=False)
        await self._sock.prepare(request)
        self.environ = environ
        await self.handler(self)
        return self._sock


def use_uncompressed_websocket(server: socketio.AsyncServer) -> None:
    # Per server (not the module-wide driver table), so two servers in one process may differ.
    server.eio._async = {**server.eio._async, "websocket": UncompressedWebSocket}


def start_manager(server: socketio.AsyncServer) -> None:
    """Starts the client manager (its listener) now; the stock server waits for its first connection."""
    server.manager_initialized = True
    server.manager.initialize()


async def disconnect_all(server: socketio.AsyncServer) -> None:
    if server.eio.sockets:  # engineio's disconnect-all fails when there is no one to disconnect
        await server.eio.disconnect()


async def close_write_only(manager: socketio.AsyncRedisManager) -> None:
    """Closes a write-only manager's Redis connection (the stock manager has no close of its own)."""
    if manager.redis is not None:
        await manager.redis.aclose()
        manager.redis = None
        manager.connected = False


class RedisManagerAdapter(socketio.AsyncRedisManager):
    """The stock Redis manager, each private hook it calls routed to a method of our own name.

    Each of those does what the stock hook did until a subclass overrides it, and a
    subclass's `super().name()` still reaches the stock code; the stock code calling one
    hook from another (its publish reconnecting, its listener reading messages) reaches the
    subclass's version, as an override of the private name would.
    """

    # ---- the library's private hooks ----------------------------------------------------------

    async def _publish(self, data: Any) -> Any:
        return await self.publish_shared(data)

    async def _handle_emit(self, message: dict[str, Any]) -> None:
        await self.deliver_emit(message)

    def _redis_connect(self) -> None:
        self.connect_redis()

    def _redis_listen_with_retries(self) -> AsyncIterator[dict[str, Any]]:
        return self.redis_messages()

    def _listen(self) -> AsyncIterator[Any]:
        return self.shared_messages()

    # ---- the same hooks under our names, stock by default -------------------------------------

    async def publish_shared(self, data: Any) -> Any:
        """Publishes a message (an emit, a disconnect, a room change...) on the shared channel."""
        return await super()._publish(data)

    async def deliver_emit(self, message: dict[str, Any]) -> None:
        """An emit message, this node's own or one heard on Redis, reaches this node's clients."""
        await super()._handle_emit(message)

    def connect_redis(self) -> None:
        """Sets `redis` and `pubsub` (a redis.asyncio client and its PubSub) and `connected`."""
        super()._redis_connect()

    def redis_messages(self) -> AsyncIterator[dict[str, Any]]:
        """Every message of the pub/sub connection, subscribed to the shared channel, surviving drops."""
        return super()._redis_listen_with_retries()

    def shared_messages(self) -> AsyncIterator[Any]:
        """What the manager's listener decodes and dispatches (another node's emits, room changes...)."""
        return super()._listen()

    # ---- beyond the hooks ---------------------------------------------------------------------

    async def send_event(self, eio_sids: list[str], namespace: str, event: str, data: Any) -> None:
        """These sockets of this node get the event: encoded once, queued on each socket in turn.

        (The stock manager spawns a task per recipient; queueing a packet never blocks,
        so the tasks only cost time.)
        """
        encoded = self.server.packet_class(packet.EVENT, namespace=namespace, data=[event, data]).encode()
        frame = eio_packet.Packet(eio_packet.MESSAGE, encoded)
        for eio_sid in eio_sids:
            await self.server._send_eio_packet(eio_sid, frame)

    async def stop_listener(self) -> None:
        """Cancels the listener task that `initialize()` started, if it did, and waits for it."""
        task = getattr(self, "thread", None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
