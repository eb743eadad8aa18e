"""The triage performance page in headless Chromium against a real `skindoc serve`: a doctor enters a
histopathology result in the page, the figures (AUC as the API computes it, reliability plot) and the sensitivity
alert appear, and nothing on the page breaks its content security policy."""

from __future__ import annotations

import uuid

import aiohttp
import pytest
from playwright.async_api import expect

from tests.test_browser_flows import (  # noqa: F401  (browser is a fixture)
    DESKTOP,
    SCREENSHOTS,
    AppServer,
    api,
    browser,
    new_page,
    pytestmark,
    register,
    server_env,
    sign_in,
)
from tests.test_chat_support import SYMPTOMS

VERSION = "feedc0de00000001"


@pytest.fixture
def outcomes_server(settings, tmp_path):
    server = AppServer(server_env(settings, worker=False, SKINDOC_OUTCOMES_ALERT_WINDOW="3"), tmp_path / "server.log")
    yield server
    server.stop()


async def resolved_case(http, server, patient: dict, doctor: dict, diagnosis: str) -> str:
    case = await api(
        http,
        "POST",
        f"{server.url}/api/v1/consultations",
        patient["token"],
        json={"description": "A spot on my back.", "body_site": "back", "symptoms": {**SYMPTOMS, "size_changed": True}},
    )
    await api(http, "POST", f"{server.url}/api/v1/consultations/{case['id']}/take", doctor["token"], json={})
    await api(
        http,
        "POST",
        f"{server.url}/api/v1/consultations/{case['id']}/resolve",
        doctor["token"],
        json={"outcome": "in_person_visit", "note": "Biopsy booked.", "diagnosis": diagnosis, "biopsy_taken": True},
    )
    return case["id"]


async def score(db, case_id: str, p: float) -> None:
    """The model's score for the case, as the worker would have stored it."""
    band = "urgent" if p >= 0.3 else "soon" if p >= 0.1 else "routine"
    photo_id = await db.fetchval(
        """INSERT INTO triage_photos (consultation_id, body_site, sha256, source_format, width, height, image,
                                      thumbnail, status) VALUES ($1, 'back', $2, 'jpeg', 10, 10, '', '', 'scored')
           RETURNING id""",
        uuid.UUID(case_id),
        uuid.uuid4().hex,
    )
    await db.execute(
        """INSERT INTO triage_photo_scores (photo_id, model_version, p_malignant, probabilities, dx,
                                                         urgency, batch_size) VALUES ($1, $2, $3, '{}', 'nv', $4, 1)""",
        photo_id,
        VERSION,
        p,
        band,
    )
    # The live score in its one home (triage_consultation_scores), and the band it gave the case.
    await db.execute(
        """INSERT INTO triage_consultation_scores (consultation_id, photo_id, model_version, urgency,
                                                                p_malignant, scored_photos)
                        VALUES ($1, $2, $3, $4, $5, 1)""",
        uuid.UUID(case_id),
        photo_id,
        VERSION,
        band,
        p,
    )
    await db.execute("UPDATE consultations SET urgency = $2 WHERE id = $1", uuid.UUID(case_id), band)


async def test_doctor_enters_a_result_and_reads_the_figures_and_the_alert(outcomes_server, browser, db):  # noqa: F811 - fixture
    server = outcomes_server
    async with aiohttp.ClientSession() as http:
        doctor = await register(http, server, "doctor", "Dr Ana Lima")
        patient = await register(http, server, "patient", "Jon Berg")
        # Two malignant lesions the model left in the routine band, two benign ones, then one it caught.
        seeded = [("mel", True, 0.05), ("bcc", True, 0.08), ("nv", False, 0.02), ("bkl", False, 0.07)]
        for dx, _, p in seeded:
            case_id = await resolved_case(http, server, patient, doctor, dx)
            await score(db, case_id, p)
            await api(
                http,
                "POST",
                f"{server.url}/api/v1/consultations/{case_id}/histopathology",
                doctor["token"],
                json={"diagnosis": dx, "reported_on": "2026-01-15"},
            )
        last = await resolved_case(http, server, patient, doctor, "unsure")
        await score(db, last, 0.6)

        errors: list[str] = []
        _, page = await new_page(browser, DESKTOP, errors)
        await sign_in(page, server.url, "/performance", doctor["email"])
        awaiting = page.locator(f".awaiting-case[data-consultation='{last}']")
        await expect(awaiting).to_be_visible()
        await expect(page.locator("#sensitivity-alert")).to_be_hidden()
        await awaiting.get_by_label("Histopathology").select_option("mel")
        await awaiting.get_by_role("button", name="Save result").click()
        await expect(page.locator("#awaiting-empty")).to_be_visible()

        figures = await api(http, "GET", f"{server.url}/api/v1/outcomes/performance", doctor["token"])
        [version] = figures["versions"]
        assert version["all"]["cases"] == 5 and version["all"]["auc"]["value"] == pytest.approx(5 / 6)
        card = page.locator(f".version[data-version='{VERSION}']")
        row = card.locator("tr[data-kind='all photos']")
        await expect(row.locator(".auc")).to_contain_text(f"{version['all']['auc']['value']:.3f}")
        await expect(row.locator(".sensitivity")).to_contain_text("1 of 3")
        await expect(card.locator("svg.reliability-plot circle")).to_have_count(
            sum(1 for b in version["all"]["reliability"]["bins"] if b["count"])
        )
        # 1 of the last 3 malignant lesions in the urgent band: under the model card's interval.
        await expect(page.locator("#sensitivity-alert")).to_be_visible()
        await expect(page.locator("#sensitivity-alert")).to_contain_text("1 of the last 3")
        await expect(page.locator("#queue-rows .waited")).to_have_text("2")
        # The bands' words come from the server (GET /api/v1/triage/bands), not from the page.
        await expect(page.locator("#queue-rows .by-band")).to_have_text("Soon: 0, Routine: 2")
        await expect(page.locator(".screening-aid")).to_contain_text("never a diagnosis")
        await page.screenshot(path=SCREENSHOTS / "performance.png", full_page=True)

    assert (
        await db.fetchval("SELECT count(*) FROM histopathology_results WHERE consultation_id = $1", uuid.UUID(last))
        == 1
    )
    assert errors == []
