"""The whole consultation over real sockets: open, queue, pairing, chat both ways, appointment, resolution."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.test_chat_support import call, connect, make_user, open_case


async def test_whole_consultation_over_sockets(node, db):
    patient = await make_user(node, "patient")
    doctor = await make_user(node, "doctor")
    case = await open_case(node, patient)
    assert case["state"] == "waiting" and case["awaiting_score"] is True
    assert case["queue"]["position"] == 1 and case["queue"]["estimated_wait_seconds"] > 0

    doctor_sock, doctor_events = await connect(node, doctor)
    patient_sock, patient_events = await connect(node, patient, transports=["polling", "websocket"])
    try:
        subscribed = await call(doctor_sock, "queue:subscribe")
        assert subscribed["ok"] and [e["consultation_id"] for e in subscribed["queue"]] == [case["id"]]
        assert "patient_id" not in subscribed["queue"][0]

        ack = await call(doctor_sock, "presence:set", {"availability": "available"})
        assert ack["ok"] and ack["doctor"]["online"] is True
        assigned = await patient_events.wait_for("consultation:updated", lambda d: d["reason"] == "assigned")
        assert assigned["consultation"]["doctor_id"] == str(doctor.id)
        await doctor_events.wait_for("consultation:updated", lambda d: d["reason"] == "assigned")
        await doctor_events.wait_for("queue:snapshot", lambda d: d["queue"] == [])

        sent = await call(
            patient_sock,
            "message:send",
            {"consultation_id": case["id"], "client_msg_id": "p-1", "body": "Hello doctor"},
        )
        assert sent["ok"] and sent["message"]["seq"] == 1 and sent["duplicate"] is False
        retried = await call(
            patient_sock,
            "message:send",
            {"consultation_id": case["id"], "client_msg_id": "p-1", "body": "Hello doctor"},
        )
        assert retried["message"]["seq"] == 1 and retried["duplicate"] is True
        pushed = await doctor_events.wait_for("message", lambda m: m["seq"] == 1)
        assert pushed["body"] == "Hello doctor" and pushed["sender_role"] == "patient"

        reply = await call(
            doctor_sock,
            "message:send",
            {"consultation_id": case["id"], "client_msg_id": "d-1", "body": "Hello, show me"},
        )
        assert reply["message"]["seq"] == 2
        await patient_events.wait_for("message", lambda m: m["seq"] == 2)

        assert (await call(doctor_sock, "typing", {"consultation_id": case["id"], "typing": True}))["ok"]
        typing = await patient_events.wait_for("typing")
        assert typing == {"consultation_id": case["id"], "user_id": str(doctor.id), "typing": True}
        read = await call(patient_sock, "read", {"consultation_id": case["id"], "seq": 2})
        assert read["read_seq"] == 2
        await doctor_events.wait_for("read", lambda r: r["read_seq"] == 2)

        starts = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
        proposed = await call(
            doctor_sock,
            "appointment:propose",
            {
                "consultation_id": case["id"],
                "slots": [
                    {
                        "starts_at": starts.isoformat(),
                        "minutes": 20,
                        "kind": "video",
                        "location": "https://v.example/1",
                    },
                    {
                        "starts_at": (starts + timedelta(hours=1)).isoformat(),
                        "kind": "in_person",
                        "location": "Clinic room 4",
                    },
                ],
            },
        )
        assert proposed["ok"], proposed
        appointment = proposed["appointment"]
        await patient_events.wait_for("appointment:updated")
        confirmed = await call(
            patient_sock,
            "appointment:confirm",
            {"appointment_id": appointment["id"], "slot_id": appointment["slots"][1]["id"]},
        )
        assert confirmed["appointment"]["state"] == "confirmed"
        await doctor_events.wait_for("appointment:updated", lambda d: d["appointment"]["state"] == "confirmed")
        for user in (patient, doctor):
            listed = await (await node.client.get("/api/v1/appointments", headers=user.headers)).json()
            assert [a["state"] for a in listed["appointments"]] == ["confirmed"]

        resolved = await call(
            doctor_sock,
            "consultation:resolve",
            {"consultation_id": case["id"], "outcome": "monitor", "note": "Photo in 3 months"},
        )
        assert resolved["consultation"]["state"] == "resolved"
        await patient_events.wait_for("consultation:updated", lambda d: d["reason"] == "resolved")
        late = await call(
            patient_sock, "message:send", {"consultation_id": case["id"], "client_msg_id": "p-2", "body": "Thanks"}
        )
        assert late["ok"] is False and late["error"]["code"] == "wrong_state"
    finally:
        await doctor_sock.disconnect()
        await patient_sock.disconnect()

    for user in (patient, doctor):
        history = await node.client.get(f"/api/v1/consultations/{case['id']}/messages", headers=user.headers)
        body = await history.json()
        assert [m["seq"] for m in body["messages"]] == [1, 2] and body["has_more"] is False
    actions = {r["action"] for r in await db.fetch("SELECT action FROM audit_log")}
    assert {
        "consultation.create",
        "consultation.assign",
        "chat.message.send",
        "appointment.propose",
        "appointment.confirm",
        "consultation.resolve",
        "chat.history.read",
        "queue.read",
    } <= actions
