"""The REST side: listing, cancelling, history pages, appointments without double booking, availability."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from tests.test_chat_support import make_user, open_case


async def _take(node, doctor, case_id):
    response = await node.client.post(f"/api/v1/consultations/{case_id}/take", headers=doctor.headers)
    assert response.status == 200, await response.text()


def _slot(starts: datetime, **extra) -> dict:
    return {"starts_at": starts.isoformat(), "minutes": 30, "kind": "video", "location": "https://v.example/x", **extra}


async def test_list_cancel_and_read_own_consultations(node):
    patient = await make_user(node, "patient")
    first = await open_case(node, patient, "first")
    second = await open_case(node, patient, "second")
    listed = await (await node.client.get("/api/v1/consultations", headers=patient.headers)).json()
    assert [c["id"] for c in listed["consultations"]] == [second["id"], first["id"]]
    assert [c["queue"]["position"] for c in listed["consultations"]] == [2, 1]

    cancelled = await node.client.post(
        f"/api/v1/consultations/{first['id']}/cancel", headers=patient.headers, json={"reason": "It healed"}
    )
    assert cancelled.status == 200 and (await cancelled.json())["state"] == "cancelled"
    again = await node.client.post(f"/api/v1/consultations/{first['id']}/cancel", headers=patient.headers, json={})
    assert again.status == 409 and (await again.json())["code"] == "wrong_state"
    moved_up = await (await node.client.get(f"/api/v1/consultations/{second['id']}", headers=patient.headers)).json()
    assert moved_up["queue"]["position"] == 1
    waiting = await (await node.client.get("/api/v1/consultations?state=waiting", headers=patient.headers)).json()
    assert [c["id"] for c in waiting["consultations"]] == [second["id"]]
    bad = await node.client.get("/api/v1/consultations/not-a-uuid", headers=patient.headers)
    assert bad.status == 404 and bad.content_type == "application/problem+json"
    anonymous = await node.client.get("/api/v1/consultations")
    assert anonymous.status == 401


async def test_history_is_paginated_both_ways(node):
    patient, doctor = await make_user(node, "patient"), await make_user(node, "doctor")
    case = await open_case(node, patient)
    await _take(node, doctor, case["id"])
    for i in range(7):
        sender = (patient, doctor)[i % 2]
        response = await node.client.post(
            f"/api/v1/consultations/{case['id']}/messages",
            headers=sender.headers,
            json={"client_msg_id": f"m{i}", "body": f"message {i}"},
        )
        assert response.status == 200 and (await response.json())["message"]["seq"] == i + 1
    url = f"/api/v1/consultations/{case['id']}/messages"
    page = await (await node.client.get(f"{url}?after_seq=2&limit=3", headers=patient.headers)).json()
    assert [m["seq"] for m in page["messages"]] == [3, 4, 5] and page["has_more"] is True
    page = await (await node.client.get(f"{url}?after_seq=5&limit=3", headers=patient.headers)).json()
    assert [m["seq"] for m in page["messages"]] == [6, 7] and page["has_more"] is False
    page = await (await node.client.get(f"{url}?before_seq=8&limit=3", headers=doctor.headers)).json()
    assert [m["seq"] for m in page["messages"]] == [5, 6, 7] and page["has_more"] is True
    page = await (await node.client.get(f"{url}?before_seq=3&limit=3", headers=doctor.headers)).json()
    assert [m["seq"] for m in page["messages"]] == [1, 2] and page["has_more"] is False
    both = await node.client.get(f"{url}?before_seq=3&after_seq=1", headers=doctor.headers)
    assert both.status == 422


async def test_concurrent_messages_get_gapless_sequence_numbers(node, db):
    patient, doctor = await make_user(node, "patient"), await make_user(node, "doctor")
    case = await open_case(node, patient)
    await _take(node, doctor, case["id"])
    url = f"/api/v1/consultations/{case['id']}/messages"
    sends = [
        node.client.post(
            url, headers=(patient, doctor)[i % 2].headers, json={"client_msg_id": f"c{i}", "body": f"m{i}"}
        )
        for i in range(40)
    ]
    retries = [
        node.client.post(url, headers=patient.headers, json={"client_msg_id": "c0", "body": "m0"}) for _ in range(5)
    ]
    responses = await asyncio.gather(*sends, *retries)
    assert all(r.status == 200 for r in responses)
    seqs = [
        r["seq"]
        for r in await db.fetch(
            "SELECT seq FROM consultation_messages WHERE consultation_id = $1 ORDER BY seq", case["id"]
        )
    ]
    assert seqs == list(range(1, 41))


async def test_appointments_cannot_double_book_a_doctor(node):
    doctor = await make_user(node, "doctor")
    patients = [await make_user(node, "patient") for _ in range(2)]
    cases = [await open_case(node, p) for p in patients]
    for case in cases:
        await _take(node, doctor, case["id"])
    starts = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    proposals = []
    for case in cases:
        response = await node.client.post(
            f"/api/v1/consultations/{case['id']}/appointments", headers=doctor.headers, json={"slots": [_slot(starts)]}
        )
        assert response.status == 201, await response.text()
        proposals.append(await response.json())
    # Both patients try to confirm the same hour at once: one wins.
    confirms = await asyncio.gather(
        *[
            node.client.post(
                f"/api/v1/appointments/{proposal['id']}/confirm",
                headers=patient.headers,
                json={"slot_id": proposal["slots"][0]["id"]},
            )
            for patient, proposal in zip(patients, proposals, strict=True)
        ]
    )
    assert sorted(r.status for r in confirms) == [200, 409]
    loser = next(r for r in confirms if r.status == 409)
    assert (await loser.json())["code"] == "slot_taken"
    overlapping = await node.client.post(
        f"/api/v1/consultations/{cases[0]['id']}/appointments",
        headers=doctor.headers,
        json={"slots": [_slot(starts + timedelta(minutes=15))]},
    )
    assert overlapping.status == 409
    past = await node.client.post(
        f"/api/v1/consultations/{cases[0]['id']}/appointments",
        headers=doctor.headers,
        json={"slots": [_slot(starts - timedelta(days=4))]},
    )
    assert past.status == 422

    loser_index = confirms.index(loser)
    declined = await node.client.post(
        f"/api/v1/appointments/{proposals[loser_index]['id']}/decline",
        headers=patients[loser_index].headers,
        json={"reason": "Another time"},
    )
    assert declined.status == 200 and (await declined.json())["state"] == "declined"
    other = await node.client.post(
        f"/api/v1/appointments/{proposals[loser_index]['id']}/decline",
        headers=patients[1 - loser_index].headers,
        json={},
    )
    assert other.status == 404
    listed = await (await node.client.get("/api/v1/appointments", headers=doctor.headers)).json()
    assert sorted(a["state"] for a in listed["appointments"]) == ["confirmed", "declined"]


async def test_availability_and_capacity_routes(node):
    doctor = await make_user(node, "doctor")
    admin = await make_user(node, "admin")
    status = await (await node.client.get("/api/v1/doctors/me", headers=doctor.headers)).json()
    assert status["availability"] == "away" and status["capacity"] == 3 and status["active"] == 0
    response = await node.client.put(
        "/api/v1/doctors/me/availability", headers=doctor.headers, json={"availability": "available"}
    )
    assert (await response.json())["availability"] == "available"
    response = await node.client.put(
        f"/api/v1/doctors/{doctor.id}/capacity", headers=doctor.headers, json={"capacity": 9}
    )
    assert response.status == 403
    response = await node.client.put(
        f"/api/v1/doctors/{doctor.id}/capacity", headers=admin.headers, json={"capacity": 21}
    )
    assert response.status == 422
    response = await node.client.put(
        f"/api/v1/doctors/{admin.id}/capacity", headers=admin.headers, json={"capacity": 2}
    )
    assert response.status == 404
    response = await node.client.put(
        f"/api/v1/doctors/{doctor.id}/capacity", headers=admin.headers, json={"capacity": 2}
    )
    assert (await response.json())["capacity"] == 2


async def test_a_malformed_path_id_answers_like_an_unknown_one(node):
    """404 `<thing>_not_found` either way, so a caller cannot tell a bad id from one that does not exist."""
    patient, doctor = await make_user(node, "patient"), await make_user(node, "doctor")
    admin = await make_user(node, "admin")
    for who, method, path, code in (
        (patient, "GET", "/api/v1/consultations/{}", "consultation_not_found"),
        (doctor, "POST", "/api/v1/consultations/{}/take", "consultation_not_found"),
        (patient, "GET", "/api/v1/consultations/{}/outcome", "consultation_not_found"),
        (patient, "GET", "/api/v1/consultations/{}/photos", "consultation_not_found"),
        (patient, "GET", "/api/v1/photos/{}/thumbnail", "photo_not_found"),
        (patient, "POST", "/api/v1/appointments/{}/decline", "appointment_not_found"),
        (admin, "POST", "/api/v1/admin/doctors/{}/approve", "doctor_not_found"),
    ):
        for target in ("not-a-uuid", str(uuid.uuid4())):
            response = await node.client.request(method, path.format(target), headers=who.headers, json={})
            body = await response.json()
            assert (response.status, body["code"]) == (404, code), (path, target, body)
