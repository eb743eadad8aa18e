"""Group commit: one batch mixing consultations, repeats, outsiders and closed cases gets the right answer for each."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from auth.audit import AuditContext
from auth.audit_chain import verify_chain
from auth.principal import Principal
from chat.store import messages as store
from tests.test_chat_support import make_user, open_case


def _principal(user) -> Principal:
    return Principal(user.id, user.role, True, "test", datetime.now(UTC))


async def test_one_batch_answers_each_message_correctly(node, db):
    doctor = await make_user(node, "doctor")
    patients = [await make_user(node, "patient") for _ in range(3)]
    cases = [await open_case(node, p) for p in patients]
    for case in cases[:2]:
        taken = await node.client.post(f"/api/v1/consultations/{case['id']}/take", headers=doctor.headers)
        assert taken.status == 200
    ctx = AuditContext(None, request_id="test")

    def pending(case, user, client_id):
        return store.PendingMessage(uuid.UUID(case["id"]), _principal(user), client_id, f"body {client_id}", ctx)

    batch = [
        pending(cases[1], patients[1], "a"),  # consultation 2, seq 1
        pending(cases[0], patients[0], "a"),  # consultation 1, seq 1 (same client id, other case)
        pending(cases[0], doctor, "b"),  # consultation 1, seq 2
        pending(cases[0], patients[0], "a"),  # a repeat within the batch
        pending(cases[0], patients[1], "c"),  # an outsider
        pending(cases[2], patients[2], "d"),  # a waiting case: no chat yet
        pending(cases[1], patients[1], "e"),  # consultation 2, seq 2
    ]
    results = await store.insert_messages(db, batch)
    summary = [(r.row["seq"] if r.row else None, r.duplicate) for r in results]
    assert summary == [(1, False), (1, False), (2, False), (1, True), (None, False), (None, False), (2, False)]
    again = await store.insert_messages(db, [pending(cases[0], doctor, "b")])
    assert again[0].row["seq"] == 2 and again[0].duplicate is True
    last = {str(r["id"]): r["last_seq"] for r in await db.fetch("SELECT id, last_seq FROM consultations")}
    assert [last[c["id"]] for c in cases] == [2, 2, 0]
    assert await db.fetchval("SELECT count(*) FROM consultation_messages") == 4
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE action = 'chat.message.send'") == 4
    # One audit row per stored message, in arrival order, with the sender as actor, through auth's one insert:
    # the chain stays whole.
    rows = await db.fetch(
        "SELECT actor_id, actor_role, subject_id, details FROM audit_log WHERE action = 'chat.message.send' ORDER BY id"
    )
    assert [(str(r["actor_id"]), r["actor_role"], r["subject_id"]) for r in rows] == [
        (str(patients[1].id), "patient", cases[1]["id"]),
        (str(patients[0].id), "patient", cases[0]["id"]),
        (str(doctor.id), "doctor", cases[0]["id"]),
        (str(patients[1].id), "patient", cases[1]["id"]),
    ]
    assert json.loads(rows[0]["details"]) == {"seq": 1, "chars": len("body a")}
    result = await verify_chain(db, b"k" * 32)
    assert result.broken is None


async def test_the_storing_statement_writes_no_audit_row_itself(node, db):
    """Audit rows come only through auth's insert (chat/store/messages.py calls it): the SQL function writes none."""
    doctor = await make_user(node, "doctor")
    patient = await make_user(node, "patient")
    case = await open_case(node, patient)
    assert (await node.client.post(f"/api/v1/consultations/{case['id']}/take", headers=doctor.headers)).status == 200
    before = await db.fetchval("SELECT count(*) FROM audit_log")
    rows = await db.fetch(
        "SELECT * FROM chat_store_messages($1, $2, $3, $4, $5)",
        [uuid.UUID(case["id"])],
        [patient.id],
        ["patient"],
        ["x"],
        ["hello"],
    )
    assert [r["outcome"] for r in rows] == ["stored"]
    assert await db.fetchval("SELECT count(*) FROM audit_log") == before
