"""Helpers for the chat tests: accounts through auth's service, real apps on real ports, Socket.IO clients.

No tests here; the chat test modules import these.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from dataclasses import dataclass, replace
from typing import Any

import socketio

from auth import AUTH_SERVICE
from auth.audit import AuditContext
from chat import CHAT_SERVICE
from web.app import create_app
from web.settings import Settings

PASSWORD = "correct horse battery staple 9"
# Checklist score 1 (routine): the queue's order is then the photo score's to decide.
SYMPTOMS = {
    "size_changed": False,
    "shape_irregular": False,
    "colour_irregular": False,
    "diameter_7mm": False,
    "inflamed": False,
    "oozing": False,
    "sensation_changed": True,
    "duration": "months",
}


def chat_settings(settings: Settings, **chat_overrides: Any) -> Settings:
    """The test's settings (already on a pub/sub channel of its own) with some chat settings changed."""
    return replace(settings, chat=replace(settings.chat, **chat_overrides))


@dataclass
class Node:
    """One running app (a web node) and an HTTP client against it."""

    client: Any

    @property
    def app(self):
        return self.client.server.app

    @property
    def url(self) -> str:
        return str(self.client.make_url("")).rstrip("/")

    @property
    def service(self):
        return self.app[CHAT_SERVICE]


async def start_node(aiohttp_client, settings: Settings) -> Node:
    return Node(await aiohttp_client(create_app(settings)))


@dataclass
class User:
    id: uuid.UUID
    role: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def make_user(node: Node, role: str, *, approved: bool = True) -> User:
    service = node.app[AUTH_SERVICE]
    email = f"{role}-{secrets.token_hex(5)}@example.org"
    if role == "admin":
        user = await service.create_admin(email=email, name=f"Test {role}", password=PASSWORD)
    else:
        user = await service.register(
            email=email, password=PASSWORD, name=f"Test {role}", role=role, ctx=AuditContext(None)
        )
        if role == "doctor" and approved:
            await service.approve_doctor(user.id, ctx=AuditContext(None))
    return User(user.id, role, service.tokens.issue(user.id, role))


async def open_case(node: Node, patient: User, description: str = "A mole that changed colour") -> dict:
    response = await node.client.post(
        "/api/v1/consultations",
        headers=patient.headers,
        json={"description": description, "body_site": "back", "symptoms": SYMPTOMS},
    )
    assert response.status == 201, await response.text()
    return await response.json()


class Events:
    """Collects what the server pushes to one Socket.IO client, and waits for it."""

    def __init__(self) -> None:
        self.received: dict[str, list[Any]] = {}
        self._changed = asyncio.Condition()

    async def record(self, event: str, data: Any) -> None:
        async with self._changed:
            self.received.setdefault(event, []).append(data)
            self._changed.notify_all()

    def of(self, event: str) -> list[Any]:
        return self.received.get(event, [])

    async def wait_for(self, event: str, predicate=lambda data: True, timeout: float = 5.0) -> Any:
        async def found() -> Any:
            async with self._changed:
                while True:
                    for data in self.of(event):
                        if predicate(data):
                            return data
                    await self._changed.wait()

        return await asyncio.wait_for(found(), timeout)


async def connect(
    node: Node, user: User, *, transports: list[str] | None = None, events: Events | None = None
) -> tuple[socketio.AsyncClient, Events]:
    client = socketio.AsyncClient(reconnection=False)
    events = events or Events()

    async def on_any(event: str, data: Any = None) -> None:
        await events.record(event, data)

    client.on("*", on_any)
    await client.connect(node.url, auth={"token": user.token}, transports=transports or ["websocket"], wait_timeout=5)
    return client, events


async def call(client: socketio.AsyncClient, event: str, payload: Any = None, timeout: float = 10) -> dict:
    return await client.call(event, payload if payload is not None else {}, timeout=timeout)


async def send_message(client: socketio.AsyncClient, consultation_id: str, client_msg_id: str, body: str) -> dict:
    """The ack of a `message:send`."""
    return await call(
        client, "message:send", {"consultation_id": consultation_id, "client_msg_id": client_msg_id, "body": body}
    )


async def connect_refusal(node: Node, auth: Any) -> Any:
    """What the server said when it refused a connection (the client's `connect_error` data)."""
    client = socketio.AsyncClient(reconnection=False)
    refusals: list[Any] = []

    async def on_error(data: Any = None) -> None:
        refusals.append(data)

    client.on("connect_error", on_error)
    try:
        await client.connect(node.url, auth=auth, transports=["websocket"], wait_timeout=5)
    except socketio.exceptions.ConnectionError:
        return refusals[0] if refusals else None
    await client.disconnect()
    raise AssertionError("the connection was accepted")
