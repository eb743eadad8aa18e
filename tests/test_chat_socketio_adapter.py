"""Loud failure when a python-socketio / python-engineio upgrade changes an internal that chat relies on.

chat.socketio_adapter and chat.pubsub override or call private names of both libraries;
setup.cfg pins them to the tested range. This test names every such internal and the shape
relied on, so an upgrade that moves one fails here, with the name, before anything subtler.
"""

from __future__ import annotations

import configparser
import inspect
from importlib.metadata import version
from pathlib import Path

import pytest
import socketio
from engineio.async_drivers.aiohttp import WebSocket as EngineIoWebSocket
from packaging.requirements import Requirement
from socketio.async_pubsub_manager import AsyncPubSubManager

# (owner, private name, the parameters it is called or overridden with)
RELIED_ON = [
    (socketio.AsyncServer, "_handle_eio_message", ["self", "eio_sid", "data"]),  # GuardedServer overrides
    (socketio.AsyncServer, "_handle_event", ["self", "eio_sid", "namespace", "id", "data"]),  # GuardedServer
    (socketio.AsyncServer, "_send_packet", ["self", "eio_sid", "pkt"]),  # GuardedServer's error acks
    (socketio.AsyncServer, "_send_eio_packet", ["self", "eio_sid", "eio_pkt"]),  # pubsub: encode once per room
    (AsyncPubSubManager, "_publish", ["self", "data"]),  # pubsub: bounded publishes
    (AsyncPubSubManager, "_handle_emit", ["self", "message"]),  # pubsub: signals, room emits
    (socketio.AsyncRedisManager, "_redis_connect", ["self"]),  # pubsub: the shared pool
    (socketio.AsyncRedisManager, "_redis_listen_with_retries", ["self"]),  # pubsub: resubscribing
    (socketio.AsyncRedisManager, "_listen", ["self"]),  # pubsub: own-echo filter
    (EngineIoWebSocket, "__init__", ["self", "handler", "server"]),  # UncompressedWebSocket
]


@pytest.mark.parametrize("owner, name, parameters", RELIED_ON, ids=[f"{o.__name__}.{n}" for o, n, _ in RELIED_ON])
def test_each_private_method_relied_on_still_exists_with_its_parameters(owner, name, parameters):
    method = getattr(owner, name, None)
    assert method is not None, f"{owner.__module__}.{owner.__name__}.{name} is gone: see chat/socketio_adapter.py"
    assert list(inspect.signature(method).parameters) == parameters, f"{owner.__name__}.{name} changed shape"


def test_the_stock_message_and_state_shapes_relied_on():
    # pubsub publishes the stock emit message itself and reads the manager's state.
    handle_emit = inspect.getsource(AsyncPubSubManager._handle_emit)
    for key in ("'event'", "'data'", "'namespace'", "'room'", "'skip_sid'", "'callback'"):
        assert key in handle_emit, f"the pub/sub emit message no longer has {key}"
    assert "host_id" in inspect.getsource(AsyncPubSubManager._thread), "own echoes are no longer told by host_id"
    server = socketio.AsyncServer(async_mode="aiohttp")
    assert "websocket" in server.eio._async, "engineio's per-server driver table moved (UncompressedWebSocket)"
    assert hasattr(server, "manager_initialized"), "chat.setup starts the manager through this flag"
    manager = socketio.AsyncRedisManager("redis://127.0.0.1:6379/15", write_only=True)
    for attribute in ("redis", "pubsub", "channel", "host_id", "json", "rooms"):
        assert hasattr(manager, attribute), f"AsyncRedisManager.{attribute} is gone"
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
