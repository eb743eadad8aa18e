"""Pairing under contention across two nodes, auto pairing preferences, transfer and the capacity limits."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

from tests.test_chat_support import SYMPTOMS, call, connect, make_user, open_case


async def _set_capacity(node, admin, doctor, capacity: int) -> None:
    response = await node.client.put(
        f"/api/v1/doctors/{doctor.id}/capacity", headers=admin.headers, json={"capacity": capacity}
    )
    assert response.status == 200, await response.text()


async def test_200_concurrent_takes_from_20_doctors_over_100_cases_on_two_nodes(nodes, db):
    node_a, node_b = nodes
    admin = await make_user(node_a, "admin")
    doctors = [await make_user(node_a, "doctor") for _ in range(20)]
    for doctor in doctors:
        await _set_capacity(node_a, admin, doctor, 5)
    patients = [await make_user(node_a, "patient") for _ in range(100)]
    cases = [await open_case(node_a, p) for p in patients]
    hot_case = cases[0]["id"]

    consoles = [(await connect((node_a, node_b)[i % 2], d))[0] for i, d in enumerate(doctors)]

    async def take(doctor, console, index: int):
        # Every doctor first grabs the same case at once, then asks for "next" nine times.
        payload = {"consultation_id": hot_case} if index == 0 else {}
        ack = await call(console, "queue:take", payload, timeout=60)
        return doctor, ack

    requests = [take(doctor, console, i) for doctor, console in zip(doctors, consoles, strict=True) for i in range(10)]
    random.Random(4).shuffle(requests)
    try:
        results = await asyncio.gather(*requests)
    finally:
        for console in consoles:
            await console.disconnect()
    assert len(results) == 200

    succeeded = [(d, ack["consultation"]["id"]) for d, ack in results if ack["ok"]]
    failed_codes = Counter(ack["error"]["code"] for _, ack in results if not ack["ok"])
    # wrong_state: a doctor whose "next" already gave them the hot case asks for it by name.
    assert set(failed_codes) <= {"doctor_at_capacity", "already_taken", "wrong_state", "queue_empty"}
    hot_losers = [ack for _, ack in results if not ack["ok"] and ack["error"]["code"] == "already_taken"]
    assert hot_losers and all(ack["error"]["status"] == 409 for ack in hot_losers)
    taken_ids = [case_id for _, case_id in succeeded]
    assert len(taken_ids) == len(set(taken_ids)) == 100  # no case twice, every case once
    assert max(Counter(d.id for d, _ in succeeded).values()) <= 5
    assert taken_ids.count(hot_case) == 1

    rows = await db.fetch("SELECT doctor_id, count(*) AS n FROM consultations WHERE state = 'active' GROUP BY 1")
    assert sum(r["n"] for r in rows) == 100 and max(r["n"] for r in rows) <= 5
    takes = await db.fetchval("SELECT count(*) FROM audit_log WHERE action = 'consultation.take'")
    assert takes == 100


async def test_a_lost_take_race_answers_409_already_taken_and_a_bad_id_404(nodes):
    node_a, node_b = nodes
    doc_1, doc_2 = await make_user(node_a, "doctor"), await make_user(node_a, "doctor")
    sock_1, _ = await connect(node_a, doc_1)
    sock_2, _ = await connect(node_b, doc_2)
    try:
        unknown = await call(sock_1, "queue:take", {"consultation_id": "00000000-0000-4000-8000-000000000000"})
        assert (unknown["error"]["status"], unknown["error"]["code"]) == (404, "consultation_not_found")
        # Two races (capacity is 3): the loser arrives during the winner's transaction or after it.
        for _ in range(2):
            case = await open_case(node_a, await make_user(node_a, "patient"))
            acks = await asyncio.gather(
                *(call(sock, "queue:take", {"consultation_id": case["id"]}) for sock in (sock_1, sock_2))
            )
            assert sorted(ack["ok"] for ack in acks) == [False, True], acks
            [lost] = [ack for ack in acks if not ack["ok"]]
            assert (lost["error"]["status"], lost["error"]["code"]) == (409, "already_taken")
        late = await call(sock_2, "queue:take", {"consultation_id": case["id"]})
        assert late["error"]["code"] in ("already_taken", "wrong_state") and late["error"]["status"] == 409
    finally:
        await sock_1.disconnect()
        await sock_2.disconnect()


async def test_backlog_drains_to_least_loaded_and_prefers_the_last_doctor(nodes):
    node_a, node_b = nodes
    patient = await make_user(node_a, "patient")
    first_case = await open_case(node_a, patient)
    doc_1, doc_2 = await make_user(node_a, "doctor"), await make_user(node_b, "doctor")
    sock_1, _ = await connect(node_a, doc_1)
    sock_2, events_2 = await connect(node_b, doc_2)
    try:
        await call(sock_1, "presence:set", {"availability": "available"})
        body = await (
            await node_a.client.get(f"/api/v1/consultations/{first_case['id']}", headers=patient.headers)
        ).json()
        assert body["state"] == "active" and body["doctor_id"] == str(doc_1.id)
        await call(
            sock_1,
            "consultation:resolve",
            {"consultation_id": first_case["id"], "outcome": "reassure", "note": "Benign"},
        )

        # doc_1 now has 0 cases; give doc_2 none either, then make doc_1 the busier one.
        await call(sock_2, "presence:set", {"availability": "available"})
        others = [await make_user(node_a, "patient") for _ in range(1)]
        extra = await open_case(node_a, others[0])
        extra_doctor = (
            await (await node_a.client.get(f"/api/v1/consultations/{extra['id']}", headers=others[0].headers)).json()
        )["doctor_id"]
        assert extra_doctor in (str(doc_1.id), str(doc_2.id))
        # The returning patient goes back to the doctor they saw last, even if that doctor is busier.
        second = await open_case(node_a, patient)
        assigned = await (
            await node_a.client.get(f"/api/v1/consultations/{second['id']}", headers=patient.headers)
        ).json()
        assert assigned["doctor_id"] == str(doc_1.id)
        # New patients go to the less-loaded doctor, so the load stays balanced.
        for _ in range(2):
            await open_case(node_a, await make_user(node_a, "patient"))
        loads = Counter()
        for doctor in (doc_1, doc_2):
            listed = await (
                await node_a.client.get("/api/v1/consultations?state=active", headers=doctor.headers)
            ).json()
            loads[doctor.id] = len(listed["consultations"])
        assert loads[doc_1.id] == loads[doc_2.id] == 2

        # Transfer back to the queue: not offered to the same doctor again; doc_2 gets it.
        transferred = await call(
            sock_1, "consultation:transfer", {"consultation_id": second["id"], "reason": "Needs a second opinion"}
        )
        assert transferred["ok"], transferred
        moved = await events_2.wait_for(
            "consultation:updated", lambda d: d["consultation"]["id"] == second["id"] and d["reason"] == "assigned"
        )
        assert moved["consultation"]["doctor_id"] == str(doc_2.id)
    finally:
        await sock_1.disconnect()
        await sock_2.disconnect()


async def test_transfer_to_named_doctor_moves_the_room(nodes):
    node_a, node_b = nodes
    patient = await make_user(node_a, "patient")
    doc_1, doc_2 = await make_user(node_a, "doctor"), await make_user(node_b, "doctor")
    case = await open_case(node_a, patient)
    assert (await node_a.client.post(f"/api/v1/consultations/{case['id']}/take", headers=doc_1.headers)).status == 200
    await node_b.client.get("/api/v1/doctors/me", headers=doc_2.headers)  # doc_2 known to the service
    sock_1, events_1 = await connect(node_a, doc_1)
    sock_2, events_2 = await connect(node_b, doc_2)
    patient_sock, _ = await connect(node_a, patient)
    try:
        ack = await call(
            sock_1,
            "consultation:transfer",
            {"consultation_id": case["id"], "reason": "Specialist", "to_doctor_id": str(doc_2.id)},
        )
        assert ack["ok"] and ack["consultation"]["doctor_id"] == str(doc_2.id)
        await events_2.wait_for("consultation:updated", lambda d: d["reason"] == "transferred")
        await call(patient_sock, "message:send", {"consultation_id": case["id"], "client_msg_id": "x", "body": "hi"})
        await events_2.wait_for("message")
        await asyncio.sleep(0.2)
        assert events_1.of("message") == []  # the old doctor left the room
        denied = await call(sock_1, "message:sync", {"consultation_id": case["id"], "after_seq": 0})
        assert denied["error"]["status"] == 404
    finally:
        for sock in (sock_1, sock_2, patient_sock):
            await sock.disconnect()


async def test_patient_limit_and_one_active_case_per_doctor_pair(nodes):
    node_a, _ = nodes
    patient = await make_user(node_a, "patient")
    doctor = await make_user(node_a, "doctor")
    cases = await asyncio.gather(
        *[
            node_a.client.post(
                "/api/v1/consultations",
                headers=patient.headers,
                json={
                    "description": f"lesion {i}",
                    "body_site": "arm",
                    "symptoms": dict(SYMPTOMS, duration="days"),
                },
            )
            for i in range(5)
        ]
    )
    statuses = sorted(r.status for r in cases)
    assert statuses == [201, 201, 201, 409, 409]
    refused = [await r.json() for r in cases if r.status == 409]
    assert all(b["code"] == "patient_at_capacity" for b in refused)

    first = await node_a.client.post("/api/v1/queue/take-next", headers=doctor.headers)
    assert first.status == 200
    second = await node_a.client.post("/api/v1/queue/take-next", headers=doctor.headers)
    assert second.status == 409 and (await second.json())["code"] == "queue_empty"
    waiting = [b for b in [await r.json() for r in cases if r.status == 201] if b["id"] != (await first.json())["id"]]
    named = await node_a.client.post(f"/api/v1/consultations/{waiting[0]['id']}/take", headers=doctor.headers)
    assert named.status == 409 and (await named.json())["code"] == "already_with_doctor"


async def test_cancel_and_capacity_edges_tell_the_doctor(nodes):
    node_a, node_b = nodes
    admin = await make_user(node_a, "admin")
    patient = await make_user(node_a, "patient")
    doc_1, doc_2 = await make_user(node_a, "doctor"), await make_user(node_b, "doctor")
    await _set_capacity(node_a, admin, doc_2, 0)
    case = await open_case(node_a, patient)
    sock_1, events_1 = await connect(node_b, doc_1)
    try:
        assert (await call(sock_1, "queue:take", {"consultation_id": case["id"]}))["ok"]
        full = await call(
            sock_1,
            "consultation:transfer",
            {"consultation_id": case["id"], "reason": "x", "to_doctor_id": str(doc_2.id)},
        )
        assert full["error"]["code"] == "doctor_at_capacity"
        unknown = await call(
            sock_1,
            "consultation:transfer",
            {"consultation_id": case["id"], "reason": "x", "to_doctor_id": str(patient.id)},
        )
        assert unknown["error"]["code"] == "doctor_not_found"
        cancelled = await node_a.client.post(f"/api/v1/consultations/{case['id']}/cancel", headers=patient.headers)
        assert cancelled.status == 200
        told = await events_1.wait_for("consultation:updated", lambda d: d["reason"] == "cancelled")
        assert told["consultation"]["state"] == "cancelled"
        status = await (await node_b.client.get("/api/v1/doctors/me", headers=doc_1.headers)).json()
        assert status["active"] == 0
    finally:
        await sock_1.disconnect()
