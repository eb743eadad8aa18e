"""The AsyncAPI contract: the document is sound, the server enforces it, and the wire cannot wedge a connection."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import aiohttp
import pytest
from jsonschema import Draft202012Validator

from chat import contract, namespace
from chat.socketio_adapter import BINARY_NOT_SUPPORTED
from tests.contract_check import ContractCheck
from tests.test_chat_support import call, chat_settings, connect, make_user, open_case, start_node

ROOT = Path(__file__).parent.parent


async def _active_case(node):
    patient, doctor = await make_user(node, "patient"), await make_user(node, "doctor")
    case = await open_case(node, patient)
    response = await node.client.post(f"/api/v1/consultations/{case['id']}/take", headers=doctor.headers)
    assert response.status == 200, await response.text()
    return patient, doctor, case


def test_the_document_is_sound_and_covers_every_handler():
    doc = contract.document(2000)
    assert doc["asyncapi"].startswith("3.")
    for schema in doc["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    # The namespace's dispatch table, read from its source (building one needs running services).
    namespace_events = set(re.findall(r'"([a-z:]+)": self\._', Path(namespace.__file__).read_text()))
    assert namespace_events == set(contract.client_events(2000))
    assert (ROOT / "docs/asyncapi.yaml").resolve() == contract.DOCUMENT_PATH.resolve()


def test_the_status_table_in_the_docs_matches_the_document():
    groups = contract.document(2000)["components"]["schemas"]["Error"]["oneOf"]
    in_document = {
        code: group["properties"]["status"]["const"] for group in groups for code in group["properties"]["code"]["enum"]
    }
    text = (ROOT / "docs/realtime-api.md").read_text()
    table = text[text.index("| status | codes |") :].split("\n\n")[0]
    in_docs = {
        code: int(row.split("|")[1])
        for row in table.splitlines()[2:]
        for code in re.findall(r"`([a-z_]+)`", row.split("|")[2])
    }
    assert in_docs == in_document


def test_the_checker_fails_on_what_the_document_does_not_allow():
    checker = ContractCheck()
    checker.check_push("message", ({"seq": 1},))
    checker.check_push("no:such:push", ({},))
    checker.check_ack("read", {"ok": False, "error": {"status": 404, "code": "invalid_field", "detail": "x"}})
    checker.check_ack("read", {"ok": True, "read_seq": 3, "extra": 1})
    assert len(checker.violations) == 4, checker.violations
    checker.violations.clear()


async def test_served_document_carries_the_configured_message_length(settings, aiohttp_client):
    node = await start_node(aiohttp_client, chat_settings(settings, max_message_chars=300))
    response = await node.client.get("/api/v1/asyncapi.json")
    assert response.status == 200
    served = await response.json()
    assert served["components"]["schemas"]["MessageBody"]["maxLength"] == 300
    patient, _, case = await _active_case(node)
    sock, _ = await connect(node, patient)
    try:
        too_long = {"consultation_id": case["id"], "client_msg_id": "m1", "body": "x" * 301}
        ack = await call(sock, "message:send", too_long)
        assert ack["error"] == {**ack["error"], "code": "invalid_field", "field": "body", "status": 422}
    finally:
        await sock.disconnect()


async def test_lengths_count_code_points_and_unknown_fields_are_named(node, realtime_contract):
    patient, _, case = await _active_case(node)
    sock, _ = await connect(node, patient)
    base = {"consultation_id": case["id"]}
    try:
        # 2000 emoji: 2000 code points, 4000 UTF-16 units (JavaScript's .length) — accepted.
        ack = await call(sock, "message:send", {**base, "client_msg_id": "e1", "body": "😀" * 2000})
        assert ack["ok"], ack
        ack = await call(sock, "message:send", {**base, "client_msg_id": "e2", "body": "😀" * 2001})
        assert ack["error"]["code"] == "invalid_field" and ack["error"]["field"] == "body"
        ack = await call(sock, "message:sync", {**base, "afterSeq": 0})
        assert ack["error"]["code"] == "unknown_field" and ack["error"]["field"] == "afterSeq"
    finally:
        await sock.disconnect()
    assert realtime_contract.seen["ack message:send"] == 2  # the fixture saw them


async def test_the_sending_socket_gets_its_message_in_the_ack_not_as_a_push(node):
    patient, doctor, case = await _active_case(node)
    phone, phone_events = await connect(node, patient)
    laptop, laptop_events = await connect(node, patient)
    console, console_events = await connect(node, doctor)
    try:
        ack = await call(phone, "message:send", {"consultation_id": case["id"], "client_msg_id": "own", "body": "hi"})
        assert ack["message"]["seq"] == 1
        for events in (laptop_events, console_events):
            assert (await events.wait_for("message"))["client_msg_id"] == "own"
        await asyncio.sleep(0.3)
        assert phone_events.of("message") == []
    finally:
        for sock in (phone, laptop, console):
            await sock.disconnect()


class RawSocket:
    """A Socket.IO connection spoken by hand over a websocket, to send what no client library would.

    Every Socket.IO packet rides in an engine.io message packet: the leading "4".
    """

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    @classmethod
    async def open(cls, session: aiohttp.ClientSession, node, token: str) -> RawSocket:
        ws = await session.ws_connect(f"{node.url}/socket.io/?EIO=4&transport=websocket")
        assert (await ws.receive_str()).startswith("0")  # engine.io open
        await ws.send_str("40" + json.dumps({"token": token}))
        assert (await ws.receive_str()).startswith("40")  # connected to "/"
        return cls(ws)

    async def ack(self, ack_id: int, timeout: float = 5) -> dict:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            message = await self.ws.receive(timeout=deadline - asyncio.get_running_loop().time())
            assert message.type == aiohttp.WSMsgType.TEXT, message
            if message.data == "2":
                await self.ws.send_str("3")  # engine.io ping → pong
            elif message.data.startswith(f"43{ack_id}["):
                return json.loads(message.data[len(f"43{ack_id}") :])[0]


async def test_binary_and_malformed_packets_get_error_acks_and_the_connection_stays_usable(node, db):
    patient, _, case = await _active_case(node)
    async with aiohttp.ClientSession() as session:
        raw = await RawSocket.open(session, node, patient.token)
        # A binary event announcing two attachments but sending one: refused, the attachment dropped.
        await raw.ws.send_str('452-1["message:send",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]')
        await raw.ws.send_bytes(b"\x00\x01")
        assert (await raw.ack(1)) == BINARY_NOT_SUPPORTED
        await raw.ws.send_str('422["message:send",{"consultation_id":')  # not JSON
        assert (await raw.ack(2))["error"]["code"] == "malformed_packet"
        await raw.ws.send_str('423{"not": "a list"}')
        assert (await raw.ack(3))["error"]["code"] == "malformed_packet"
        # The next ordinary event is handled: nothing was swallowed as an attachment.
        payload = {"consultation_id": case["id"], "client_msg_id": "after", "body": "still here"}
        await raw.ws.send_str("424" + json.dumps(["message:send", payload]))
        ack = await raw.ack(4)
        assert ack["ok"] and ack["message"]["seq"] == 1
        await raw.ws.close()
    assert await db.fetchval("SELECT count(*) FROM consultation_messages") == 1


async def test_an_oversized_frame_closes_the_websocket_with_1009_and_a_new_one_works(node, db):
    patient, _, case = await _active_case(node)
    async with aiohttp.ClientSession() as session:
        raw = await RawSocket.open(session, node, patient.token)
        huge = {"consultation_id": case["id"], "client_msg_id": "big", "body": "x" * (70 * 1024)}
        await raw.ws.send_str("421" + json.dumps(["message:send", huge]))
        while (await raw.ws.receive(timeout=5)).type not in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSED,
            aiohttp.WSMsgType.CLOSING,
        ):
            pass
        assert raw.ws.close_code == 1009
        again = await RawSocket.open(session, node, patient.token)
        payload = {"consultation_id": case["id"], "client_msg_id": "small", "body": "fits"}
        await again.ws.send_str("421" + json.dumps(["message:send", payload]))
        assert (await again.ack(1))["ok"]
        await again.ws.close()
    assert await db.fetchval("SELECT count(*) FROM consultation_messages") == 1


async def test_an_oversized_polling_post_is_refused_and_ends_the_session(node):
    patient = await make_user(node, "patient")
    base = f"{node.url}/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as session:
        opened = await (await session.get(base)).text()
        sid = json.loads(opened[opened.index("{") :])["sid"]
        url = f"{base}&sid={sid}"
        assert (await session.post(url, data="40" + json.dumps({"token": patient.token}))).status == 200
        try:
            big = await session.post(
                url,
                data="42" + json.dumps(["typing", {"pad": "x" * (70 * 1024)}]),
                timeout=aiohttp.ClientTimeout(total=3),
            )
            assert big.status == 400
        except TimeoutError:
            pass  # engine.io refuses without reading the body; the POST may get no answer
        after = await session.get(url, timeout=aiohttp.ClientTimeout(total=5))
        assert after.status == 400  # the session is gone: the client reconnects, never hangs on it


AGREEMENT = [  # (event, payload): the fast and the explaining validator must agree on each
    ("message:send", {"consultation_id": "5f0e7d7c-1111-4222-8333-444455556666", "client_msg_id": "c-1", "body": "hé"}),
    ("message:send", {"consultation_id": "5f0e7d7c-1111-4222-8333-444455556666", "client_msg_id": "c 1", "body": "x"}),
    (
        "message:send",
        {"consultation_id": "5f0e7d7c-1111-4222-8333-444455556666", "client_msg_id": "c", "body": "a\x07"},
    ),
    (
        "message:send",
        {"consultation_id": "5f0e7d7c-1111-4222-8333-444455556666", "client_msg_id": "c", "body": "😀" * 2000},
    ),
    (
        "message:send",
        {"consultation_id": "5f0e7d7c-1111-4222-8333-444455556666", "client_msg_id": "c", "body": "😀" * 2001},
    ),
    ("message:send", {"consultation_id": "{5f0e7d7c-1111-4222-8333-444455556666}", "client_msg_id": "c", "body": "x"}),
    ("queue:take", {"consultation_id": None}),
    ("queue:take", {"consultation_id": 7}),
    ("consultation:join", {"consultation_id": "5f0e7d7c-1111-4222-8333-444455556666", "after_seq": True}),
    (
        "consultation:resolve",
        {"consultation_id": "5f0e7d7c-1111-4222-8333-444455556666", "outcome": "monitor", "diagnosis": "nv"},
    ),
    (
        "consultation:resolve",
        {
            "consultation_id": "5f0e7d7c-1111-4222-8333-444455556666",
            "outcome": "monitor",
            "note": None,
            "diagnosis": "nv",
            "biopsy_taken": False,
        },
    ),
    (
        "appointment:propose",
        {
            "consultation_id": "5f0e7d7c-1111-4222-8333-444455556666",
            "slots": [{"starts_at": "2030-01-01T10:00:00Z", "kind": "video", "location": "x", "minutes": 4}],
        },
    ),
    ("read", {"consultation_id": "5f0e7d7c-1111-4222-8333-444455556666", "seq": 1.5}),
]


@pytest.mark.parametrize("event, payload", AGREEMENT)
def test_the_fast_and_the_explaining_validator_agree(event, payload):
    check = contract.client_events(2000)[event]
    assert check.fast.is_valid(payload) == check.explaining.is_valid(payload)
