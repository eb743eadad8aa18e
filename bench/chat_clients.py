"""The chat benchmark's clients: one python-socketio client per simulated person, connected over websocket
only, all in this one asyncio process, joined to their consultation's room."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import aiohttp
import socketio


@dataclass
class Peer:
    """One load client: its socket, the consultation it chats in and what it saw."""

    index: int
    case_id: str
    token: str | None
    url: str
    sio: socketio.AsyncClient | None = None
    in_flight: int = 0


def new_client(session: aiohttp.ClientSession) -> socketio.AsyncClient:
    return socketio.AsyncClient(reconnection=False, http_session=session, handle_sigint=False, request_timeout=30)


async def connect_all(
    peers: list[Peer], session: aiohttp.ClientSession, concurrency: int, on_message=None
) -> tuple[int, dict[str, int]]:
    """Connects every peer over websocket only; returns how many connected and the failures by reason."""
    limit = asyncio.Semaphore(concurrency)
    failures: dict[str, int] = {}

    async def one(peer: Peer) -> bool:
        sio = new_client(session)
        if on_message is not None:
            sio.on("message", lambda data, peer=peer: on_message(peer, data))
        async with limit:
            try:
                await sio.connect(
                    peer.url,
                    transports=["websocket"],
                    auth={"token": peer.token} if peer.token else None,
                    wait_timeout=60,
                )
            except Exception as exc:  # noqa: BLE001 — counted and reported, the run goes on
                reason = f"{type(exc).__name__}: {exc}"[:80]
                failures[reason] = failures.get(reason, 0) + 1
                return False
        peer.sio = sio
        return True

    results = await asyncio.gather(*(one(p) for p in peers))
    return sum(results), failures


async def disconnect_all(peers: list[Peer]) -> None:
    limit = asyncio.Semaphore(200)

    async def one(peer: Peer) -> None:
        if peer.sio is not None:
            async with limit:
                with contextlib.suppress(Exception):
                    await peer.sio.disconnect()

    await asyncio.gather(*(one(p) for p in peers))


async def join_rooms(peers: list[Peer]) -> dict[str, int]:
    """`consultation:join` for every connected peer; a peer whose join fails is left out of the load (and counted)."""
    limit = asyncio.Semaphore(100)
    failures: dict[str, int] = {}

    async def one(peer: Peer) -> None:
        async with limit:
            try:
                ack = await peer.sio.call("consultation:join", {"consultation_id": peer.case_id}, timeout=60)
                reason = None if ack.get("ok") else f"refused: {ack.get('error', {}).get('code')}"
            except Exception as exc:  # noqa: BLE001 — a timeout or a dropped socket
                reason = type(exc).__name__
        if reason is not None:
            failures[reason] = failures.get(reason, 0) + 1
            with contextlib.suppress(Exception):
                await peer.sio.disconnect()
            peer.sio = None

    await asyncio.gather(*(one(p) for p in peers if p.sio is not None))
    return failures
