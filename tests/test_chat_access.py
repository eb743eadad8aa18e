"""Authorisation and authentication: other patients' rooms, unassigned and pending doctors, admins, tokens."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace

from auth import AUTH_SERVICE
from tests.test_chat_support import (
    User,
    call,
    connect,
    connect_refusal,
    make_user,
    open_case,
)


async def _active_case(node):
    patient = await make_user(node, "patient")
    doctor = await make_user(node, "doctor")
    case = await open_case(node, patient)
    assert (await node.client.post(f"/api/v1/consultations/{case['id']}/take", headers=doctor.headers)).status == 200
    return patient, doctor, case


async def test_other_patient_cannot_join_room_or_read_history(node, db):
    patient, doctor, case = await _active_case(node)
    intruder = await make_user(node, "patient")
    sock, events = await connect(node, intruder)
    owner_sock, _ = await connect(node, patient)
    try:
        for event, payload in [
            ("consultation:join", {"consultation_id": case["id"]}),
            ("message:sync", {"consultation_id": case["id"], "after_seq": 0}),
            ("message:send", {"consultation_id": case["id"], "client_msg_id": "x", "body": "hi"}),
            ("read", {"consultation_id": case["id"], "seq": 1}),
        ]:
            ack = await call(sock, event, payload)
            assert ack["ok"] is False and ack["error"]["status"] == 404, (event, ack)
        ack = await call(sock, "typing", {"consultation_id": case["id"], "typing": True})
        assert ack["error"]["code"] == "not_in_room"
        await call(owner_sock, "message:send", {"consultation_id": case["id"], "client_msg_id": "m", "body": "private"})
        await asyncio.sleep(0.2)
        assert events.of("message") == []
    finally:
        await sock.disconnect()
        await owner_sock.disconnect()
    for path in (f"/api/v1/consultations/{case['id']}", f"/api/v1/consultations/{case['id']}/messages"):
        response = await node.client.get(path, headers=intruder.headers)
        assert response.status == 404 and response.content_type == "application/problem+json"
    assert await db.fetchval("SELECT count(*) FROM consultation_messages") == 1


async def test_unassigned_doctor_sees_only_the_queue_summary(node):
    patient, doctor, case = await _active_case(node)
    other_doctor = await make_user(node, "doctor")
    for path in (f"/api/v1/consultations/{case['id']}", f"/api/v1/consultations/{case['id']}/messages"):
        assert (await node.client.get(path, headers=other_doctor.headers)).status == 404
    waiting = await open_case(node, await make_user(node, "patient"))
    queue = await (await node.client.get("/api/v1/queue", headers=other_doctor.headers)).json()
    assert [e["consultation_id"] for e in queue["queue"]] == [waiting["id"]]
    # A waiting case: the doctor may know it exists, but its full record and chat are not theirs.
    for path in (f"/api/v1/consultations/{waiting['id']}", f"/api/v1/consultations/{waiting['id']}/messages"):
        response = await node.client.get(path, headers=other_doctor.headers)
        assert response.status == 403, path
    sock, _ = await connect(node, other_doctor)
    try:
        ack = await call(
            sock, "consultation:resolve", {"consultation_id": case["id"], "outcome": "monitor", "note": "not mine"}
        )
        assert ack["error"]["status"] == 404
    finally:
        await sock.disconnect()


async def test_pending_doctor_and_admin_get_nothing_clinical(node):
    patient, doctor, case = await _active_case(node)
    pending = await make_user(node, "doctor", approved=False)
    refusal = await connect_refusal(node, {"token": pending.token})
    assert refusal["data"]["code"] == "account_pending"
    # The same answer for a real case and an unknown one: a pending doctor learns nothing from ids.
    for case_id in (case["id"], str(uuid.uuid4())):
        for method, path in [
            ("GET", "/api/v1/queue"),
            ("POST", "/api/v1/queue/take-next"),
            ("GET", f"/api/v1/consultations/{case_id}"),
            ("GET", f"/api/v1/consultations/{case_id}/messages"),
            ("GET", f"/api/v1/consultations/{case_id}/photos"),
            ("GET", f"/api/v1/consultations/{case_id}/outcome"),
            ("GET", f"/api/v1/photos/{case_id}/thumbnail"),
            ("GET", "/api/v1/outcomes/performance"),
        ]:
            response = await node.client.request(method, path, headers=pending.headers)
            code = (await response.json())["code"]
            assert (response.status, code) == (403, "doctor_not_approved"), (method, path, response.status, code)
    admin = await make_user(node, "admin")
    for path in (
        f"/api/v1/consultations/{case['id']}",
        "/api/v1/queue",
        f"/api/v1/consultations/{case['id']}/messages",
    ):
        assert (await node.client.get(path, headers=admin.headers)).status == 403


async def test_bad_and_expired_tokens_are_refused(node):
    patient = await make_user(node, "patient")
    for auth, code in (
        (None, "token_missing"),
        ({}, "token_missing"),
        ({"token": "not-a-token"}, "token_invalid"),
        ({"token": _token_with_ttl(node, patient, -5)}, "token_expired"),
    ):
        refusal = await connect_refusal(node, auth)
        assert refusal["data"]["code"] == code, (auth, refusal)


def _token_with_ttl(node, user: User, ttl_s: int) -> str:
    tokens = node.app[AUTH_SERVICE].tokens
    original = tokens._config
    tokens._config = replace(original, access_token_ttl_s=ttl_s)
    try:
        return tokens.issue(user.id, user.role)
    finally:
        tokens._config = original


async def test_token_expiring_mid_connection_forces_reauthentication(node):
    patient = await make_user(node, "patient")
    short = User(patient.id, "patient", _token_with_ttl(node, patient, 2))
    sock, events = await connect(node, short)
    await events.wait_for("session:expired", timeout=5)
    for _ in range(50):
        if not sock.connected:
            break
        await asyncio.sleep(0.05)
    assert not sock.connected

    renewed, renewed_events = await connect(node, User(patient.id, "patient", _token_with_ttl(node, patient, 2)))
    try:
        ack = await call(renewed, "session:refresh", {"token": patient.token})
        assert ack["ok"], ack
        await asyncio.sleep(2.5)
        assert renewed.connected and renewed_events.of("session:expired") == []
        other = await make_user(node, "patient")
        ack = await call(renewed, "session:refresh", {"token": other.token})
        assert ack["error"]["code"] == "invalid_field"
    finally:
        await renewed.disconnect()


async def test_bad_payloads_get_error_acks_and_change_nothing(node, db):
    patient, doctor, case = await _active_case(node)
    sock, _ = await connect(node, patient)
    before = await db.fetchval("SELECT count(*) FROM audit_log")
    try:
        cases = [
            ("message:send", "not an object", "invalid_payload"),
            ("message:send", {"consultation_id": case["id"], "client_msg_id": "a b", "body": "x"}, "invalid_field"),
            (
                "message:send",
                {"consultation_id": case["id"], "client_msg_id": "ok", "body": "x" * 2001},
                "invalid_field",
            ),
            (
                "message:send",
                {"consultation_id": case["id"], "client_msg_id": "ok", "body": "bell\x07"},
                "invalid_field",
            ),
            ("message:send", {"consultation_id": "nope", "client_msg_id": "ok", "body": "x"}, "invalid_field"),
            ("message:send", {"client_msg_id": "ok", "body": "x"}, "missing_field"),
            ("presence:set", {"availability": "available"}, "forbidden_role"),
            ("no:such:event", {}, "unknown_event"),
        ]
        for event, payload, code in cases:
            ack = await call(sock, event, payload)
            assert ack["ok"] is False and ack["error"]["code"] == code, (event, payload, ack)
    finally:
        await sock.disconnect()
    assert await db.fetchval("SELECT count(*) FROM consultation_messages") == 0
    assert await db.fetchval("SELECT count(*) FROM audit_log") == before
    bad = await node.client.post(
        "/api/v1/consultations", headers=patient.headers, json={"description": "x", "body_site": "moon", "symptoms": {}}
    )
    assert bad.status == 422 and (await bad.json())["field"] == "body_site"
