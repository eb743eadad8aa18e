"""Loud failure when a python-socketio / python-engineio upgrade changes an internal that chat relies on.

chat.socketio_adapter is the one module that overrides or calls private names of both
libraries; setup.cfg pins them to the tested range. This test names every such internal and
the shape relied on, so an upgrade that moves one fails here, with the name, before anything
subtler; and it fails when another module under chat/ or web/ reaches a private name itself.
"""

from __future__ import annotations

import configparser
import inspect
import re
from importlib.metadata import version
from pathlib import Path

import engineio
import pytest
import socketio
from engineio.async_drivers.aiohttp import WebSocket as EngineIoWebSocket
from engineio.async_socket import AsyncSocket
from packaging.requirements import Requirement
from socketio.async_pubsub_manager import AsyncPubSubManager

from chat.socketio_adapter import RedisManagerAdapter

ROOT = Path(__file__).parent.parent
ADAPTER = ROOT / "chat" / "socketio_adapter.py"

# (owner, private name, the parameters it is called or overridden with)
RELIED_ON = [
    (socketio.AsyncServer, "_handle_eio_message", ["self", "eio_sid", "data"]),  # GuardedServer overrides
    (socketio.AsyncServer, "_handle_event", ["self", "eio_sid", "namespace", "id", "data"]),  # GuardedServer
    (socketio.AsyncServer, "_send_packet", ["self", "eio_sid", "pkt"]),  # GuardedServer's error acks
    (socketio.AsyncServer, "_send_eio_packet", ["self", "eio_sid", "eio_pkt"]),  # RedisManagerAdapter.send_event
    # RedisManagerAdapter routes these to publish_shared, deliver_emit, connect_redis,
    # redis_messages and shared_messages (chat.pubsub overrides those).
    (AsyncPubSubManager, "_publish", ["self", "data"]),
    (AsyncPubSubManager, "_handle_emit", ["self", "message"]),
    (socketio.AsyncRedisManager, "_redis_connect", ["self"]),
    (socketio.AsyncRedisManager, "_redis_listen_with_retries", ["self"]),
    (socketio.AsyncRedisManager, "_listen", ["self"]),
    (EngineIoWebSocket, "__init__", ["self", "handler", "server"]),  # UncompressedWebSocket
]


@pytest.mark.parametrize("owner, name, parameters", RELIED_ON, ids=[f"{o.__name__}.{n}" for o, n, _ in RELIED_ON])
def test_each_private_method_relied_on_still_exists_with_its_parameters(owner, name, parameters):
    method = getattr(owner, name, None)
    assert method is not None, f"{owner.__module__}.{owner.__name__}.{name} is gone: see chat/socketio_adapter.py"
    assert list(inspect.signature(method).parameters) == parameters, f"{owner.__name__}.{name} changed shape"


def test_the_stock_message_and_state_shapes_relied_on():
    # chat.pubsub publishes the stock emit message itself and reads the manager's state.
    handle_emit = inspect.getsource(AsyncPubSubManager._handle_emit)
    for key in ("'event'", "'data'", "'namespace'", "'room'", "'skip_sid'", "'callback'"):
        assert key in handle_emit, f"the pub/sub emit message no longer has {key}"
    assert "host_id" in inspect.getsource(AsyncPubSubManager._thread), "own echoes are no longer told by host_id"
    server = socketio.AsyncServer(async_mode="aiohttp")
    assert "websocket" in server.eio._async, "engineio's per-server driver table moved (UncompressedWebSocket)"
    assert hasattr(server, "manager_initialized"), "start_manager starts the manager through this flag"
    assert hasattr(server.eio, "sockets"), "disconnect_all reads engineio's open sockets"
    manager = socketio.AsyncRedisManager("redis://127.0.0.1:6379/15", write_only=True)
    for attribute in ("redis", "pubsub", "connected", "channel", "host_id", "json", "rooms"):
        assert hasattr(manager, attribute), f"AsyncRedisManager.{attribute} is gone"
    assert "self.thread =" in inspect.getsource(AsyncPubSubManager.initialize), "stop_listener's task moved"
    # _redis_listen_with_retries and _listen are async generators the stock code iterates.
    assert "async for message in self._listen()" in inspect.getsource(AsyncPubSubManager._thread)
    # The stock aiohttp websocket, which UncompressedWebSocket replaces, keeps the same three methods.
    assert {"close", "send", "wait"} <= set(vars(EngineIoWebSocket))


def test_installed_versions_are_inside_the_pinned_range():
    config = configparser.ConfigParser()
    config.read(Path(__file__).parent.parent / "setup.cfg")
    requirements = [Requirement(line) for line in config["options"]["install_requires"].split("\n") if line.strip()]
    pinned = {r.name: r.specifier for r in requirements if r.name in ("python-socketio", "python-engineio")}
    assert set(pinned) == {"python-socketio", "python-engineio"}
    for name, specifier in pinned.items():
        assert any(s.operator == "<" for s in specifier), f"{name} needs an upper bound in setup.cfg"
        assert version(name) in specifier, f"{name} {version(name)} is outside the tested range {specifier}"


def _library_private_names() -> set[str]:
    """Every private method and attribute of the library classes chat builds on or calls."""
    names: set[str] = set()
    owners = (socketio.AsyncServer, socketio.AsyncRedisManager, socketio.AsyncNamespace, engineio.AsyncServer)
    for owner in (*owners, EngineIoWebSocket, AsyncSocket):
        for cls in owner.__mro__:
            names |= set(vars(cls))
    server = socketio.AsyncServer(async_mode="aiohttp")
    manager = socketio.AsyncRedisManager("redis://127.0.0.1:6379/15", write_only=True)
    for instance in (server, server.eio, manager):
        names |= set(vars(instance))
    return {name for name in names if name.startswith("_") and not name.startswith("__")}


def test_the_adapter_s_own_names_are_not_library_names():
    # A library release adding one of these would have its code call ours without our knowing.
    ours = set(vars(RedisManagerAdapter)) - {name for name in vars(RedisManagerAdapter) if name.startswith("_")}
    library = {name for cls in socketio.AsyncRedisManager.__mro__ for name in vars(cls)}
    assert ours, "RedisManagerAdapter defines no names of its own"
    assert not ours & library, f"python-socketio now defines {sorted(ours & library)} itself"


# A private name, read (`server._x`, `super()._x`) or defined (`def _x`, which would override the library's).
_PRIVATE_USE = re.compile(r"(?:\.|\bdef\s+)(_[A-Za-z]\w*)")
# Internals without an underscore that the adapter wraps.
_PUBLIC_LOOKING_INTERNALS = re.compile(r"\bmanager_initialized\b|\beio\.sockets\b")


def test_no_module_but_the_adapter_touches_library_internals():
    private = _library_private_names()
    assert {"_send_eio_packet", "_handle_emit", "_publish", "_redis_connect"} <= private  # the scan sees them
    found = []
    for path in sorted([*(ROOT / "chat").rglob("*.py"), *(ROOT / "web").rglob("*.py")]):
        if path == ADAPTER:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            names = {match.group(1) for match in _PRIVATE_USE.finditer(line)} & private
            if names or _PUBLIC_LOOKING_INTERNALS.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "python-socketio / engineio internals belong in chat/socketio_adapter.py:\n" + "\n".join(found)
