"""The chat benchmark's traffic: acknowledged messages from every client, at a target rate (open loop) or
each on the last one's ack (closed loop), with their ack and delivery latencies."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

from bench.chat_clients import Peer
from bench.resources import CpuMeter

# Above this many unacknowledged messages a client skips its turn: an overloaded
# server then shows up as a shortfall against the target rate, not as a queue
# growing without bound in the load generator.
MAX_IN_FLIGHT = 50


@dataclass
class LoadStats:
    window_start: float = 0.0
    window_end: float = 0.0
    sent: int = 0
    skipped: int = 0
    acked: int = 0
    ack_errors: dict[str, int] = field(default_factory=dict)
    ack_latency: list[float] = field(default_factory=list)
    delivered: int = 0
    delivery_latency: list[float] = field(default_factory=list)

    def in_window(self, t: float) -> bool:
        return self.window_start <= t < self.window_end


def peer_index_of(message: dict) -> tuple[int, float] | None:
    head = str(message.get("body", "")).split(" ", 2)
    try:
        return int(head[0]), float(head[1])
    except (ValueError, IndexError):
        return None


class LoadGenerator:
    """Sends acknowledged messages from every peer and records acks and deliveries."""

    def __init__(self, peers: list[Peer], rate: float, body_chars: int) -> None:
        self.peers = [p for p in peers if p.sio is not None]
        self.rate = rate
        self.padding = "x" * max(0, body_chars - 24)
        self.stats = LoadStats()
        self._counter = 0

    def on_message(self, peer: Peer, data: dict) -> None:
        found = peer_index_of(data)
        if found is None or found[0] == peer.index:
            return  # our own message echoed by the room
        now = time.monotonic()
        if self.stats.in_window(now):
            self.stats.delivered += 1
            self.stats.delivery_latency.append(now - found[1])

    def _payload(self, peer: Peer) -> tuple[dict, float]:
        self._counter += 1
        sent_at = time.monotonic()
        return (
            {
                "consultation_id": peer.case_id,
                "client_msg_id": f"b{peer.index}-{self._counter}",
                "body": f"{peer.index} {sent_at:.6f} {self.padding}",
            },
            sent_at,
        )

    def _record_ack(self, sent_at: float, ack) -> None:
        if not self.stats.in_window(sent_at):
            return
        if isinstance(ack, dict) and ack.get("ok"):
            self.stats.acked += 1
            self.stats.ack_latency.append(time.monotonic() - sent_at)
        else:
            code = ack.get("error", {}).get("code", "?") if isinstance(ack, dict) else str(ack)[:40]
            self.stats.ack_errors[code] = self.stats.ack_errors.get(code, 0) + 1

    async def run(self, warmup: float, seconds: float, meter: CpuMeter) -> None:
        start = time.monotonic()
        self.stats.window_start = start + warmup
        self.stats.window_end = self.stats.window_start + seconds
        senders = [self._open_loop(p, start) if self.rate > 0 else self._closed_loop(p) for p in self.peers]
        tasks = [asyncio.create_task(s) for s in senders]
        await asyncio.sleep(max(0.0, self.stats.window_start - time.monotonic()))
        meter.start()
        await asyncio.sleep(max(0.0, self.stats.window_end - time.monotonic()))
        meter.stop()
        await asyncio.gather(*tasks)
        # Give the last acknowledgements a moment to arrive before counting what is missing.
        deadline = time.monotonic() + 10
        while any(p.in_flight for p in self.peers) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)

    async def _open_loop(self, peer: Peer, start: float) -> None:
        interval = len(self.peers) / self.rate
        next_at = start + random.uniform(0, interval)
        while next_at < self.stats.window_end:
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if peer.in_flight >= MAX_IN_FLIGHT:
                if self.stats.in_window(next_at):
                    self.stats.skipped += 1
            else:
                await self._send(peer)
            next_at += interval

    async def _send(self, peer: Peer) -> None:
        payload, sent_at = self._payload(peer)
        if self.stats.in_window(sent_at):
            self.stats.sent += 1
        peer.in_flight += 1

        def acked(ack=None) -> None:
            peer.in_flight -= 1
            self._record_ack(sent_at, ack)

        try:
            await peer.sio.emit("message:send", payload, callback=acked)
        except Exception:  # noqa: BLE001 — a dropped socket: counted as an error ack
            peer.in_flight -= 1
            self._record_ack(sent_at, {"error": {"code": "send_failed"}})

    async def _closed_loop(self, peer: Peer) -> None:
        while time.monotonic() < self.stats.window_end:
            payload, sent_at = self._payload(peer)
            if self.stats.in_window(sent_at):
                self.stats.sent += 1
            peer.in_flight += 1
            try:
                ack = await peer.sio.call("message:send", payload, timeout=30)
            except Exception as exc:  # noqa: BLE001 — a timeout or a dropped socket
                ack = {"error": {"code": type(exc).__name__}}
            peer.in_flight -= 1
            self._record_ack(sent_at, ack)
