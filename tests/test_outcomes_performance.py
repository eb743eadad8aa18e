"""The performance figures on a seeded set of resolved cases with known labels: the view's AUC, urgent-band
sensitivity/specificity, reliability and queue waits equal what this test computes on its own; the alert trips
(view, metric, log line) when recent sensitivity falls under the model card's interval."""

from __future__ import annotations

import json
import logging
import random
import uuid
from dataclasses import replace
from datetime import date

import pytest

from chat.outcomes.config import OutcomesConfig
from tests.test_chat_support import make_user, start_node

PERFORMANCE = "/api/v1/outcomes/performance"
VERSION_A, VERSION_B = "aaaa000000000001", "bbbb000000000002"


def band_for(p: float) -> str:
    return "urgent" if p >= 0.3 else "soon" if p >= 0.1 else "routine"


async def seed_case(
    db,
    patient_id,
    doctor_id,
    *,
    malignant: bool,
    scores: dict[str, list[tuple[float, str | None]]],
    live_version: str,
    waited_minutes: int = 30,
    closed_offset_s: int = 0,
) -> uuid.UUID:
    """A resolved case with photos scored by each model version (p, tag per photo) and a histopathology result."""
    live = max(p for p, _ in scores[live_version])
    case_id = await db.fetchval(
        """INSERT INTO consultations (patient_id, doctor_id, state, description, body_site, symptoms, urgency,
                                      queued_at, assigned_at, closed_at, outcome, checklist_score, checklist_band)
           VALUES ($1, $2, 'resolved', 'seeded', 'back', '{}', $3,
                   now() - make_interval(mins => $4 + 10), now() - interval '10 minutes',
                   now() + make_interval(secs => $5), 'monitor', 0, 'routine') RETURNING id""",
        patient_id,
        doctor_id,
        band_for(live),
        waited_minutes,
        closed_offset_s,
    )
    photo_scores = list(scores.values())
    for index in range(len(photo_scores[0])):
        tag = photo_scores[0][index][1]
        photo_id = await db.fetchval(
            """INSERT INTO triage_photos (consultation_id, body_site, tag, sha256, source_format, width, height,
                                          image, thumbnail, status)
               VALUES ($1, 'back', $2, $3, 'jpeg', 10, 10, '', '', 'scored') RETURNING id""",
            case_id,
            tag,
            uuid.uuid4().hex,
        )
        for version, photos in scores.items():
            p = photos[index][0]
            await db.execute(
                """INSERT INTO triage_photo_scores (photo_id, model_version, p_malignant, probabilities, dx, urgency,
                                                    batch_size) VALUES ($1, $2, $3, '{}', 'nv', $4, 1)""",
                photo_id,
                version,
                p,
                band_for(p),
            )
            if version == live_version and p == live:
                # The live score's one home: the deciding photo under the version that triaged the case.
                await db.execute(
                    """INSERT INTO triage_consultation_scores (consultation_id, photo_id, model_version, urgency,
                                                               p_malignant, scored_photos, trusted)
                       VALUES ($1, $2, $3, $4, $5, $6, true) ON CONFLICT (consultation_id) DO NOTHING""",
                    case_id,
                    photo_id,
                    version,
                    band_for(p),
                    p,
                    len(photos),
                )
    await db.execute(
        """INSERT INTO histopathology_results (consultation_id, diagnosis, malignant, reported_on, entered_by,
                                               entered_role) VALUES ($1, $2, $3, $4, $5, 'doctor')""",
        case_id,
        "mel" if malignant else "nv",
        malignant,
        date.today(),
        doctor_id,
    )
    return case_id


def pairwise_auc(malignant: list[bool], scores: list[float]) -> float:
    """The probability that a malignant case outscores a benign one, ties half: counted pair by pair."""
    pos = [s for s, m in zip(scores, malignant, strict=True) if m]
    neg = [s for s, m in zip(scores, malignant, strict=True) if not m]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


@pytest.fixture
async def seeded(node, db):
    patient, doctor = await make_user(node, "patient"), await make_user(node, "doctor")
    rng = random.Random(7)
    truth = []
    for i in range(40):
        malignant = i % 3 == 0
        # Two photos per case; version A separates the classes somewhat, version B less.
        base = rng.uniform(0.25, 0.95) if malignant else rng.uniform(0.0, 0.5)
        a = [
            (min(1.0, max(0.0, base + rng.uniform(-0.05, 0.05))), "dermoscopic" if i % 2 else None),
            (max(0.0, base - 0.1), None),
        ]
        b = [(rng.uniform(0, 1), tag) for _, tag in a]
        await seed_case(
            db,
            patient.id,
            doctor.id,
            malignant=malignant,
            scores={VERSION_A: a, VERSION_B: b},
            live_version=VERSION_A,
            waited_minutes=15 + i,
            closed_offset_s=i,
        )
        truth.append((malignant, a, b))
    return doctor, truth


async def test_view_figures_equal_an_independent_computation(node, seeded, db):
    doctor, truth = seeded
    response = await node.client.get(PERFORMANCE, headers=doctor.headers)
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["confirmed_cases"] == 40
    versions = {v["model_version"]: v for v in body["versions"]}
    assert set(versions) == {VERSION_A, VERSION_B}

    labels = [m for m, _, _ in truth]
    for version, column in ((VERSION_A, 1), (VERSION_B, 2)):
        case_scores = [max(p for p, _ in row[column]) for row in truth]
        figures = versions[version]["all"]
        assert figures["cases"] == 40 and figures["malignant"] == sum(labels)
        assert figures["auc"]["value"] == pytest.approx(pairwise_auc(labels, case_scores), abs=1e-12)
        low, high = figures["auc"]["ci95"]
        assert low <= figures["auc"]["value"] <= high
        urgent = [band_for(s) == "urgent" for s in case_scores]
        sensitivity = figures["urgent_band"]["sensitivity"]
        assert sensitivity["successes"] == sum(u and m for u, m in zip(urgent, labels, strict=True))
        assert sensitivity["value"] == pytest.approx(sensitivity["successes"] / sum(labels))
        specificity = figures["urgent_band"]["specificity"]
        assert specificity["successes"] == sum(not u and not m for u, m in zip(urgent, labels, strict=True))
        bins = figures["reliability"]["bins"]
        assert sum(b["count"] for b in bins) == 40
        top = [s for s in case_scores if s >= 0.9]
        assert bins[-1]["count"] == len(top)

    # Per photo kind: a case is counted under each kind it has photos of, with that kind's photos only.
    kinds = versions[VERSION_A]["by_photo_kind"]
    dermoscopic = [(m, p) for m, a, _ in truth for p, tag in a[:1] if tag == "dermoscopic"]
    assert kinds["dermoscopic"]["cases"] == len(dermoscopic)
    assert kinds["dermoscopic"]["auc"]["value"] == pytest.approx(
        pairwise_auc([m for m, _ in dermoscopic], [p for _, p in dermoscopic]), abs=1e-12
    )
    assert kinds["camera"]["cases"] == 40

    # Malignant cases that queued below urgent, and how long they waited.
    missed = [(i, m) for i, (m, a, _) in enumerate(truth) if m and band_for(max(p for p, _ in a)) != "urgent"]
    [queue] = body["queue"]
    assert queue["model_version"] == VERSION_A and queue["malignant_cases"] == sum(labels)
    assert queue["waited_in_lower_band"] == len(missed)
    if missed:
        assert queue["max_wait_seconds"] == pytest.approx(max(15 + i for i, _ in missed) * 60, abs=2)
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE action = 'outcome.performance.read'") == 1


async def test_alert_trips_below_the_model_cards_interval(aiohttp_client, settings, db, caplog):
    window = 5
    config = OutcomesConfig(alert_window=window, reference_sensitivity=0.95, reference_lower=0.80)
    node = await start_node(aiohttp_client, replace(settings, outcomes=config, metrics_token="scrape-secret"))
    doctor, patient = await make_user(node, "doctor"), await make_user(node, "patient")

    async def alert() -> dict:
        return (await (await node.client.get(PERFORMANCE, headers=doctor.headers)).json())["alert"]

    async def metric(name: str) -> float:
        text = await (await node.client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})).text()
        return float(next(line.split()[-1] for line in text.splitlines() if line.startswith(name + " ")))

    async def resolve(malignant: bool, p: float, closed_offset_s: int) -> None:
        """A resolved case with one photo scored p by version A."""
        scores = {VERSION_A: [(p, None)]}
        await seed_case(
            db,
            patient.id,
            doctor.id,
            malignant=malignant,
            scores=scores,
            live_version=VERSION_A,
            closed_offset_s=closed_offset_s,
        )

    # Four malignant cases caught: the window is not full, so nothing is judged yet.
    for i in range(4):
        await resolve(True, 0.9, i)
    state = await alert()
    assert (state["considered"], state["evaluated"], state["alert"]) == (4, False, False)

    # The fifth and sixth are missed (routine band): 3 of the last 5 caught, 60 % < 80 %.
    caplog.set_level(logging.WARNING, logger="chat.outcomes.service")
    for i in range(2):
        await resolve(True, 0.05, 10 + i)
    state = await alert()
    assert (state["considered"], state["caught"], state["alert"]) == (5, 3, True)
    assert state["sensitivity"] == pytest.approx(0.6)
    assert await metric("skindoc_triage_sensitivity_alert") == 1
    assert await metric("skindoc_triage_recent_urgent_sensitivity") == pytest.approx(0.6)
    assert [r for r in caplog.records if "sensitivity alert" in r.getMessage()]

    # Benign cases do not count; four more caught malignant cases leave one miss in the window: 80 %, not below.
    await resolve(False, 0.05, 20)
    for i in range(4):
        await resolve(True, 0.7, 30 + i)
    state = await alert()
    assert (state["considered"], state["caught"], state["alert"]) == (5, 4, False)
    assert await metric("skindoc_triage_sensitivity_alert") == 0


def test_default_reference_is_the_model_cards_figure():
    """The alert's default reference is the urgent-band sensitivity the model card publishes, and its interval."""
    from pathlib import Path

    from triage.performance import wilson_interval

    card = json.loads((Path(__file__).parent.parent / "docs/model-card/ham10000-test/figures.json").read_text())
    [figures] = card["sets"].values()
    caught = round(figures["operating_points"]["urgent"]["sensitivity"] * figures["n_malignant"])
    config = OutcomesConfig()
    assert config.reference_sensitivity == pytest.approx(caught / figures["n_malignant"], abs=1e-4)
    assert config.reference_lower == pytest.approx(wilson_interval(caught, figures["n_malignant"])[0], abs=1e-4)
    assert f"{caught} of {figures['n_malignant']}" in config.reference_source


def test_bootstrap_of_cases_equals_resampling_one_by_one():
    """The view's vectorised bootstrap gives, resample for resample, the AUC of the resampled cases."""
    import numpy as np

    from jax_models.metrics import roc_auc
    from triage.performance import bootstrap_aucs

    rng = np.random.default_rng(3)
    y = rng.random(300) < 0.3
    score = np.round(np.where(y, rng.random(300) * 0.8 + 0.2, rng.random(300) * 0.8), 2)  # with ties
    replay = np.random.default_rng(0)
    expected = []
    for block in (100, 100, 50):
        for counts in replay.multinomial(300, np.full(300, 1 / 300), size=block):
            picked = np.repeat(np.arange(300), counts)
            expected.append(roc_auc(y[picked], score[picked]))
    assert np.allclose(bootstrap_aucs(y, score, 250), expected)
