"""Recording what a lesion was: the working diagnosis at resolve (REST and Socket.IO), histopathology results by
the treating doctor or an admin only, corrections that keep their history, and the audit rows of each."""

from __future__ import annotations

import json
from datetime import date, timedelta

import asyncpg
import pytest

from tests.test_chat_support import call, connect, make_user, open_case


async def _take(node, doctor, case_id):
    response = await node.client.post(f"/api/v1/consultations/{case_id}/take", headers=doctor.headers)
    assert response.status == 200, await response.text()


async def resolved_case(node, doctor, patient, **diagnosis) -> str:
    case = await open_case(node, patient)
    await _take(node, doctor, case["id"])
    response = await node.client.post(
        f"/api/v1/consultations/{case['id']}/resolve",
        headers=doctor.headers,
        json={"outcome": "urgent_referral", "note": "See the clinic.", **diagnosis},
    )
    assert response.status == 200, await response.text()
    return case["id"]


def _histology_url(case_id: str) -> str:
    return f"/api/v1/consultations/{case_id}/histopathology"


async def _audit(db, action: str, case_id: str) -> list[dict]:
    rows = await db.fetch("SELECT * FROM audit_log WHERE action = $1 AND subject_id = $2 ORDER BY id", action, case_id)
    return [{**row, "details": json.loads(row["details"])} for row in rows]


async def test_resolve_records_the_working_diagnosis_with_its_audit_row(node, db):
    patient, doctor = await make_user(node, "patient"), await make_user(node, "doctor")
    case_id = await resolved_case(node, doctor, patient, diagnosis="mel", biopsy_taken=True)
    outcome = await (await node.client.get(f"/api/v1/consultations/{case_id}/outcome", headers=doctor.headers)).json()
    assert (outcome["working_diagnosis"], outcome["biopsy_taken"], outcome["histopathology"]) == ("mel", True, None)
    [row] = await _audit(db, "outcome.diagnosis.record", case_id)
    assert row["actor_id"] == doctor.id and row["details"] == {"working_diagnosis": "mel", "biopsy_taken": True}
    assert await _audit(db, "outcome.read", case_id)

    # Over Socket.IO too; a bad diagnosis is refused and the case stays active (nothing changed).
    other = await open_case(node, await make_user(node, "patient"))
    await _take(node, doctor, other["id"])
    sock, _ = await connect(node, doctor)
    try:
        bad = await call(
            sock,
            "consultation:resolve",
            {"consultation_id": other["id"], "outcome": "monitor", "diagnosis": "melanoma", "biopsy_taken": False},
        )
        assert not bad["ok"] and bad["error"]["field"] == "diagnosis"
        half = await call(
            sock, "consultation:resolve", {"consultation_id": other["id"], "outcome": "monitor", "diagnosis": "nv"}
        )
        assert not half["ok"] and half["error"]["field"] == "biopsy_taken"
        assert await db.fetchval("SELECT state FROM consultations WHERE id = $1", other["id"]) == "active"
        ok = await call(
            sock,
            "consultation:resolve",
            {"consultation_id": other["id"], "outcome": "monitor", "diagnosis": "unsure", "biopsy_taken": False},
        )
        assert ok["ok"], ok
    finally:
        await sock.disconnect()
    assert (
        await db.fetchval(
            "SELECT working_diagnosis FROM consultation_diagnoses WHERE consultation_id = $1", other["id"]
        )
        == "unsure"
    )


async def test_only_the_treating_doctor_or_an_admin_enters_results(node, db):
    patient, doctor = await make_user(node, "patient"), await make_user(node, "doctor")
    other_doctor, admin = await make_user(node, "doctor"), await make_user(node, "admin")
    pending = await make_user(node, "doctor", approved=False)
    case_id = await resolved_case(node, doctor, patient, diagnosis="bcc", biopsy_taken=True)
    today = date.today().isoformat()
    entry = {"diagnosis": "bcc", "reported_on": today}

    for user, status in ((patient, 403), (other_doctor, 404), (pending, 403)):  # pending: doctor_not_approved
        response = await node.client.post(_histology_url(case_id), headers=user.headers, json=entry)
        assert response.status == status, (user.role, await response.text())
        read = await node.client.get(f"/api/v1/consultations/{case_id}/outcome", headers=user.headers)
        assert read.status == status
    assert await db.fetchval("SELECT count(*) FROM histopathology_results") == 0

    first = await node.client.post(_histology_url(case_id), headers=doctor.headers, json=entry)
    assert first.status == 201, await first.text()
    body = await first.json()
    assert body["histopathology"]["malignant"] is True and body["histopathology"]["entered_role"] == "doctor"
    [row] = await _audit(db, "outcome.histopathology.enter", case_id)
    assert row["actor_id"] == doctor.id and row["details"]["diagnosis"] == "bcc"

    # A second "first" result is refused: the entry must correct the current one.
    again = await node.client.post(_histology_url(case_id), headers=admin.headers, json=entry)
    assert again.status == 409 and (await again.json())["code"] == "stale_result"
    correction = {
        "diagnosis": "other",
        "malignant": False,
        "reported_on": today,
        "supersedes": body["histopathology"]["id"],
        "correction_reason": "Second opinion: benign",
    }
    corrected = await node.client.post(_histology_url(case_id), headers=admin.headers, json=correction)
    assert corrected.status == 201, await corrected.text()
    history = (await corrected.json())["history"]
    assert [(r["diagnosis"], r["malignant"], r["entered_role"]) for r in history] == [
        ("other", False, "admin"),
        ("bcc", True, "doctor"),
    ]
    assert history[0]["supersedes"] == history[1]["id"]
    [row] = await _audit(db, "outcome.histopathology.correct", case_id)
    assert row["actor_id"] == admin.id
    # The stale correction (of the replaced result) changes nothing.
    stale = await node.client.post(_histology_url(case_id), headers=doctor.headers, json=correction)
    assert stale.status == 409
    assert await db.fetchval("SELECT count(*) FROM histopathology_results") == 2
    # The history cannot be rewritten behind the application's back either.
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await db.execute("UPDATE histopathology_results SET diagnosis = 'nv'")


async def test_bad_results_are_refused_with_the_field_named(node, db):
    patient, doctor = await make_user(node, "patient"), await make_user(node, "doctor")
    case_id = await resolved_case(node, doctor, patient)
    tomorrow = (date.today() + timedelta(days=1)).isoformat()
    for body, field in (
        ({"diagnosis": "melanoma", "reported_on": "2026-01-02"}, "diagnosis"),
        ({"diagnosis": "mel", "reported_on": tomorrow}, "reported_on"),
        ({"diagnosis": "mel", "reported_on": "02/01/2026"}, "reported_on"),
        ({"diagnosis": "mel", "malignant": False, "reported_on": "2026-01-02"}, "malignant"),
        ({"diagnosis": "other", "reported_on": "2026-01-02"}, "malignant"),
        ({"diagnosis": "nv", "reported_on": "2026-01-02", "correction_reason": "x"}, "supersedes"),
    ):
        response = await node.client.post(_histology_url(case_id), headers=doctor.headers, json=body)
        assert response.status == 422, body
        assert (await response.json())["field"] == field
    # Not resolved yet: no result can be entered.
    active = await open_case(node, patient)
    await _take(node, doctor, active["id"])
    early = await node.client.post(
        _histology_url(active["id"]), headers=doctor.headers, json={"diagnosis": "nv", "reported_on": "2026-01-02"}
    )
    assert early.status == 409
    assert await db.fetchval("SELECT count(*) FROM histopathology_results") == 0


async def test_cases_awaiting_a_result_are_the_doctors_own_or_all_for_an_admin(node):
    doctor, other_doctor, admin = (
        await make_user(node, "doctor"),
        await make_user(node, "doctor"),
        await make_user(node, "admin"),
    )
    mine = await resolved_case(node, doctor, await make_user(node, "patient"), diagnosis="mel", biopsy_taken=True)
    await resolved_case(node, doctor, await make_user(node, "patient"), diagnosis="nv", biopsy_taken=False)
    theirs = await resolved_case(
        node, other_doctor, await make_user(node, "patient"), diagnosis="scc", biopsy_taken=True
    )
    url = "/api/v1/outcomes/awaiting-histopathology"
    own = await (await node.client.get(url, headers=doctor.headers)).json()
    assert [c["consultation_id"] for c in own["cases"]] == [mine]
    everyone = await (await node.client.get(url, headers=admin.headers)).json()
    assert [c["consultation_id"] for c in everyone["cases"]] == [mine, theirs]
    patient = await make_user(node, "patient")
    assert (await node.client.get(url, headers=patient.headers)).status == 403
    assert (await node.client.get("/api/v1/outcomes/performance", headers=patient.headers)).status == 403
