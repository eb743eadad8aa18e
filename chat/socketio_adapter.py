"""Where chat relies on python-socketio / python-engineio internals (private names), so an upgrade breaks here.

tests/test_chat_socketio_adapter.py checks that every private name used here and in
chat.pubsub (the Redis manager's overrides, which stay beside the rest of that manager)
still exists with the shape relied on; setup.cfg pins both libraries to the tested range.

- `GuardedServer`: a client can no longer wedge its connection with a malformed packet.
  Events carry JSON only, so a binary event is answered with `binary_not_supported` and
  its attachments are dropped (stock python-socketio would swallow the next packets as
  attachments when fewer arrive than announced); an event packet that is not JSON, or
  whose data is not `[name, ...]`, is answered with `malformed_packet` when it has an
  ack id. Oversized frames never get here: the transport closes the connection (1009).
- `UncompressedWebSocket`: the aiohttp websocket without permessage-deflate.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import socketio
from aiohttp.web import WebSocketResponse
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
