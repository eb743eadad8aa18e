"""No request body gets a 5xx: deeply nested JSON is a typed 422 on every JSON route, and a property
test throws arbitrary JSON (nesting included) at every route that takes a body."""

from __future__ import annotations

import asyncio
import json
import uuid

from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from store.payloads import MAX_JSON_DEPTH
from tests.test_chat_support import make_user

# The attack run's body: 20,000 levels in 39 kB, under the JSON size cap.
DEEP = b'{"email": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=30,
)


def nested(depth: int, leaf: object = 1) -> object:
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def json_routes(app) -> list[tuple[str, str]]:
    """Every route that reads a JSON body (POST, PUT, PATCH), its path parameters filled with an unknown id."""
    routes = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        if route.method not in ("POST", "PUT", "PATCH") or "formatter" not in info and "path" not in info:
            continue
        path = info.get("path") or info["formatter"].format_map({k: str(uuid.uuid4()) for k in _params(info)})
        if path.endswith("/photos") or path.startswith("/socket.io"):
            continue  # multipart, and Socket.IO's own transport
        routes.append((route.method, path))
    return sorted(set(routes))


def _params(info: dict) -> list[str]:
    return [name for name in info.get("pattern").groupindex] if info.get("pattern") is not None else []


async def test_deep_nesting_is_a_typed_422_on_every_json_route(node):
    patient = await make_user(node, "patient")
    routes = json_routes(node.app)
    assert ("POST", "/api/v1/auth/register") in routes and ("POST", "/api/v1/consultations") in routes
    for method, path in routes:
        response = await node.client.request(
            method, path, data=DEEP, headers={**patient.headers, "Content-Type": "application/json"}
        )
        body = await response.json()
        # Routes that check the caller first answer 401/403/404 before reading the body; none answers 5xx.
        assert response.status < 500, (method, path, body)
        if response.status == 422:
            assert body["code"] == "too_deeply_nested" and body["max_depth"] == MAX_JSON_DEPTH
    for path in ("/api/v1/auth/register", "/api/v1/auth/login", "/api/v1/consultations"):
        response = await node.client.post(
            path, data=DEEP, headers={**patient.headers, "Content-Type": "application/json"}
        )
        assert response.status == 422 and (await response.json())["code"] == "too_deeply_nested", path
    # At the limit the body is read (and then judged on its fields).
    ok_depth = await node.client.post("/api/v1/auth/login", json={"email": nested(MAX_JSON_DEPTH - 1)})
    assert (await ok_depth.json())["code"] == "invalid_field"


async def test_any_json_body_on_any_route_gets_no_server_error(node):
    """Property: for every JSON route and any JSON value, nested up to far past the limit, no 5xx."""
    patient = await make_user(node, "patient")
    routes = json_routes(node.app)
    loop = asyncio.get_running_loop()
    tried: list[tuple[int, int]] = []  # (depth, status) of each example, to show the property was exercised

    async def send(route: tuple[str, str], body: bytes) -> int:
        response = await node.client.request(
            route[0], route[1], data=body, headers={**patient.headers, "Content-Type": "application/json"}
        )
        await response.read()
        return response.status

    @hypothesis_settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
    @given(route=st.sampled_from(routes), value=json_values, depth=st.integers(0, 3 * MAX_JSON_DEPTH))
    def property_holds(route, value, depth):
        body = json.dumps(nested(depth, value)).encode()
        status = asyncio.run_coroutine_threadsafe(send(route, body), loop).result(timeout=30)
        tried.append((depth, status))
        assert status < 500, (route, body[:200])

    await asyncio.to_thread(property_holds)
    assert len(tried) >= 100 and any(depth > MAX_JSON_DEPTH for depth, _ in tried)


async def test_a_deeply_nested_socket_event_is_refused_and_the_connection_survives(node):
    """Sent as raw Socket.IO frames: a client library cannot even encode such a payload."""
    patient = await make_user(node, "patient")
    async with node.client.session.ws_connect(f"{node.url}/socket.io/?EIO=4&transport=websocket") as ws:
        assert (await ws.receive_str()).startswith("0{")
        await ws.send_str("40" + json.dumps({"token": patient.token}))
        assert (await ws.receive_str()).startswith("40{")
        await ws.send_str('421["message:send",' + "[" * 20_000 + "]" * 20_000 + "]")
        await ws.send_str(f'422["typing",{{"consultation_id":"{uuid.uuid4()}","typing":true}}]')
        refused = await asyncio.wait_for(ws.receive_str(), 5)
        reply = await asyncio.wait_for(ws.receive_str(), 5)
    # The deep event was refused before parsing, with the documented error ack; the next one was answered.
    assert refused.startswith("431[") and json.loads(refused[3:])[0]["error"]["code"] == "malformed_packet"
    assert reply.startswith("432[") and json.loads(reply[3:])[0]["error"]["code"] == "not_in_room"
