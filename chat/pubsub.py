"""The Socket.IO client manager: emits cross nodes through Redis, a room's only to the nodes that hold its members.

python-socketio's stock Redis manager publishes every emit on one channel that
every node decodes, so each node pays for every other node's messages and a
second node adds work instead of capacity. Here each consultation room and each
user room has a Redis channel of its own, which a node subscribes to while it holds
a member of the room: an emit reaches this node's members directly and is
published on the room's channel, which only the other nodes holding members hear.

Everything else keeps the stock shared channel: the doctors' queue room, the
internal signals (see chat.realtime), disconnects and callbacks.

It builds on chat.socketio_adapter.RedisManagerAdapter, which holds every use of the
library's private names: here only its public API and the adapter's own names.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import redis.asyncio as redis_asyncio
from redis.exceptions import RedisError

from chat.socketio_adapter import RedisManagerAdapter
from store.connections import Stores

log = logging.getLogger(__name__)

NAMESPACE = "/"
# Rooms with a channel each: a consultation's chat, and each user's own room.
ROUTED_ROOM_PREFIXES = ("consultation:", "user:")
MAX_CONCURRENT_PUBLISHES = 32
# How long entering a room waits for Redis to confirm the room's subscription.
SUBSCRIBE_WAIT_S = 2.0
# Longest wait between attempts to win back the Redis subscription after it dropped.
MAX_RESUBSCRIBE_S = 2.0

Handler = Callable[[dict[str, Any]], Awaitable[None]]


def is_routed(room: Any) -> bool:
    return isinstance(room, str) and room.startswith(ROUTED_ROOM_PREFIXES)


class ChatRedisManager(RedisManagerAdapter):
    """Per-room channels on top of the stock manager; `signal_handlers` receive internal signals on every node.

    It borrows the process's Redis connection pool (opened at start-up, embedded
    Redis included) instead of dialling a URL of its own.
    """

    def __init__(self, stores: Stores, channel: str) -> None:
        super().__init__(channel=channel)
        self._stores = stores
        self._publishing = asyncio.Semaphore(MAX_CONCURRENT_PUBLISHES)
        self.signal_handlers: dict[str, Handler] = {}
        self._room_channel_prefix = f"{channel}:room:"
        # Room channels this node wants, each with a future that Redis's confirmation resolves.
        self._channels: dict[str, asyncio.Future] = {}
        # SUBSCRIBE / UNSUBSCRIBE commands not yet sent, in order.
        self._changes: list[tuple[str, str]] = []
        self._sender: asyncio.Task | None = None
        # Room publishes waiting for the next pipeline: (channel, encoded message).
        self._outbox: list[tuple[str, str]] = []
        self._flusher: asyncio.Task | None = None

    # ---- emitting ---------------------------------------------------------------------------

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str | None = None,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        room = to or room
        namespace = namespace or NAMESPACE
        if callback is None and (kwargs.get("ignore_queue") or is_routed(room)):
            await self._emit_here(event, data, namespace, room, skip_sid)
            if not kwargs.get("ignore_queue"):
                # The stock message, host id first: this node drops its own echo by that prefix, undecoded.
                self._publish_to(
                    self._room_channel(room),
                    {
                        "host_id": self.host_id,
                        "method": "emit",
                        "event": event,
                        "data": [data],
                        "binary": False,
                        "namespace": namespace,
                        "room": room,
                        "skip_sid": skip_sid,
                        "callback": None,
                    },
                )
            return
        await super().emit(event, data, namespace=namespace, room=room, skip_sid=skip_sid, callback=callback, **kwargs)

    async def _emit_here(self, event: str, data: Any, namespace: str, room: Any, skip_sid: Any) -> None:
        """This node's members of `room` get the event (encoded once: see send_event)."""
        skip = skip_sid if isinstance(skip_sid, list) else [skip_sid]
        recipients = [eio_sid for sid, eio_sid in self.get_participants(namespace, room) if sid not in skip]
        if not recipients:
            return
        await self.send_event(recipients, namespace, event, data)

    async def publish_shared(self, data: Any) -> Any:
        # Bounded, so a burst of emits waits for a connection instead of draining the shared
        # pool (redis-py refuses, rather than waits, past its connection limit).
        async with self._publishing:
            return await super().publish_shared(data)

    def _publish_to(self, channel: str, message: dict[str, Any]) -> None:
        """Queues the message for the room's channel; one task sends what has queued up as one pipeline.

        So a busy node pays one Redis round trip and one pooled connection per batch of
        publishes rather than per message, and publishes leave in the order emitted.
        """
        self._outbox.append((channel, self.json.dumps(message)))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_outbox())

    async def _flush_outbox(self) -> None:
        while self._outbox:
            batch, self._outbox = self._outbox, []
            try:
                self.connect_redis()
                async with self.redis.pipeline(transaction=False) as pipe:
                    for channel, payload in batch:
                        pipe.publish(channel, payload)
                    await pipe.execute()
            except RedisError as exc:
                # Like the stock manager: the events are lost for other nodes, the data is not
                # (chat clients resync from PostgreSQL).
                if self._stores.report_outage(exc) is None:
                    log.warning("could not publish %d room events", len(batch), exc_info=True)

    async def deliver_emit(self, message: dict[str, Any]) -> None:
        event = message.get("event")
        handler = self.signal_handlers.get(event)
        if handler is not None:
            await handler(message["data"][0])
        elif message.get("callback") is None and not message.get("binary") and len(message["data"]) == 1:
            await self._emit_here(
                event,
                message["data"][0],
                message.get("namespace") or NAMESPACE,
                message.get("room"),
                message.get("skip_sid"),
            )
        else:
            await super().deliver_emit(message)

    # ---- room channels ----------------------------------------------------------------------

    def _room_channel(self, room: str) -> str:
        return self._room_channel_prefix + room

    async def enter_room(self, sid: str, namespace: str, room: Any, eio_sid: Any = None) -> None:
        """Enters the room, and returns once this node hears the room's channel (so nothing sent after is missed)."""
        await super().enter_room(sid, namespace, room, eio_sid=eio_sid)
        await self.room_subscribed(room)

    async def room_subscribed(self, room: Any) -> None:
        future = self._channels.get(self._room_channel(room)) if is_routed(room) else None
        if future is None or future.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(future), SUBSCRIBE_WAIT_S)
        except TimeoutError:
            log.warning("no subscription confirmation for %s yet", room)

    def basic_enter_room(self, sid: str, namespace: str, room: Any, eio_sid: Any = None) -> None:
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        if is_routed(room):
            channel = self._room_channel(room)
            if channel not in self._channels:
                self._channels[channel] = asyncio.get_running_loop().create_future()
                self._change("subscribe", channel)

    def basic_leave_room(self, sid: str, namespace: str, room: Any) -> None:
        super().basic_leave_room(sid, namespace, room)
        if is_routed(room) and room not in self.rooms.get(namespace, {}):
            channel = self._room_channel(room)
            future = self._channels.pop(channel, None)
            if future is not None:
                if not future.done():
                    future.set_result(None)  # releases a waiter (the socket left); cancelling would cancel it
                self._change("unsubscribe", channel)

    def _change(self, command: str, channel: str) -> None:
        self._changes.append((command, channel))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send_changes())

    async def _send_changes(self) -> None:
        # One task sends them, in order, so an unsubscribe never overtakes the subscribe before it;
        # a run of the same command goes as one command with many channels.
        while self._changes:
            command, _ = self._changes[0]
            run = 0
            while run < len(self._changes) and self._changes[run][0] == command:
                run += 1
            channels = [channel for _, channel in self._changes[:run]]
            del self._changes[:run]
            try:
                self.connect_redis()
                await getattr(self.pubsub, command)(*channels)
            except RedisError as exc:
                # redis-py records the channels first and subscribes to them again when it reconnects.
                if self._stores.report_outage(exc) is None:
                    log.warning("could not %s %d room channels", command, len(channels), exc_info=True)

    # ---- listening --------------------------------------------------------------------------

    def connect_redis(self) -> None:
        # One pub/sub connection for the node's life: after a drop, redis-py reconnects it and
        # subscribes again to every channel it holds (the shared one and the rooms').
        if self.pubsub is None:
            self.redis = redis_asyncio.Redis(connection_pool=self._stores.redis.connection_pool)
            # Subscription confirmations are wanted: they tell room_subscribed() a channel is live.
            self.pubsub = self.redis.pubsub(ignore_subscribe_messages=False)
        self.connected = True

    async def redis_messages(self) -> AsyncIterator[dict[str, Any]]:
        retry_s = 1.0
        while True:
            try:
                self.connect_redis()
                await self.pubsub.subscribe(self.channel)
                retry_s = 1.0
                async for message in self.pubsub.listen():
                    yield message
            except RedisError as exc:
                if self._stores.report_outage(exc) is None:
                    log.error("lost the Redis subscription; retrying in %.0f s", retry_s, exc_info=True)
                await asyncio.sleep(retry_s)
                # Capped low: until it is back this node hears no other node.
                retry_s = min(retry_s * 2, MAX_RESUBSCRIBE_S)

    async def shared_messages(self) -> AsyncIterator[bytes]:
        own_echo = self.json.dumps({"host_id": self.host_id})[:-1].encode()
        async for message in self.redis_messages():
            if message["type"] == "message":
                if not message["data"].startswith(own_echo):
                    yield message["data"]
            elif message["type"] == "subscribe":
                future = self._channels.get(message["channel"].decode())
                if future is not None and not future.done():
                    future.set_result(None)

    async def close(self) -> None:
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)  # what was emitted still goes out
        await self.stop_listener()
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)
        if self.pubsub is not None:
            await self.pubsub.aclose()
        self.redis = self.pubsub = None
        self.connected = False
