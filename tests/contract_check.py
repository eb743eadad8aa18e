"""Checks every event and ack that the tests' Socket.IO clients see against chat/asyncapi.yaml.

conftest's autouse fixture `realtime_contract` wraps `socketio.AsyncClient.on` (pushes) and
`.call` (acks) for every test, and fails the test when anything it saw breaks the document.
"""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from typing import Any

from chat import contract
from chat.config import ChatConfig

# Events the client library raises itself; they are not in the document.
CLIENT_SIDE_EVENTS = {"connect", "disconnect", "connect_error"}


@functools.cache
def _validators() -> tuple[dict, dict, Any]:
    doc = contract.document(ChatConfig().max_message_chars)
    pushes, acks = {}, {}
    for operation in doc["operations"].values():
        keys = [ref["$ref"].rsplit("/", 1)[-1] for ref in operation["messages"]]
        if operation["action"] == "send":
            for key in keys:
                pushes[contract.message_name(doc, key)] = contract.validator(doc, f"/components/messages/{key}/payload")
        else:
            replies = [ref["$ref"].rsplit("/", 1)[-1] for ref in operation["reply"]["messages"]]
            for key in keys:
                acks[contract.message_name(doc, key)] = [
                    contract.validator(doc, f"/components/messages/{r}/payload") for r in replies
                ]
    return pushes, acks, contract.validator(doc, "/components/messages/errorAck/payload")


class ContractCheck:
    def __init__(self) -> None:
        self.violations: list[str] = []
        self.seen: Counter[str] = Counter()

    def check_push(self, event: str, args: tuple[Any, ...]) -> None:
        pushes, _, _ = _validators()
        self.seen[f"push {event}"] += 1
        if event not in pushes:
            self.violations.append(f"push {event!r} is not in the document")
        elif len(args) != 1:
            self.violations.append(f"push {event!r} carried {len(args)} arguments, not one")
        else:
            self._check(f"push {event!r}", [pushes[event]], args[0])

    def check_ack(self, event: str, ack: Any) -> None:
        _, acks, error_ack = _validators()
        self.seen[f"ack {event}"] += 1
        self._check(f"ack of {event!r}", acks.get(event, [error_ack]), ack)

    def _check(self, what: str, validators: list, value: Any) -> None:
        errors = [list(v.iter_errors(value)) for v in validators]
        if all(errors):
            first = min(errors, key=len)[0]
            self.violations.append(f"{what} breaks the document at {list(first.absolute_path)}: {first.message}")

    def watch(self, event: str, handler: Any) -> Any:
        """The handler, checking what it receives first (the catch-all '*' gets the event name first)."""
        if event in CLIENT_SIDE_EVENTS:
            return handler

        def check(args: tuple[Any, ...]) -> None:
            if event == "*":
                self.check_push(args[0], args[1:])
            else:
                self.check_push(event, args)

        if asyncio.iscoroutinefunction(handler):

            async def checked_async(*args: Any) -> Any:
                check(args)
                return await handler(*args)

            return checked_async

        def checked(*args: Any) -> Any:
            check(args)
            return handler(*args)

        return checked
