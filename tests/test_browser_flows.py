"""The patient app and the doctor console in headless Chromium against a real `skindoc serve`.

One browser context is the patient, another the doctor (and an admin approves the doctor), so
each has its own storage, exactly like two people on two devices. The server is a subprocess on
the test's own PostgreSQL database and Redis database, with its own Socket.IO channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import aiohttp.web
import pytest
from PIL import Image, ImageDraw, ImageFilter
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect
from playwright.async_api import Error as PlaywrightError

from tests.browsers import CHROMIUM, SKIP_REASON
from tests.live_server import LiveServer, start_server

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REPO_ROOT = Path(__file__).resolve().parent.parent
# The README's screenshots are refreshed only on request, so a test run leaves the tree as it was.
SCREENSHOTS = (
    REPO_ROOT / "docs" / "screenshots"
    if os.environ.get("SKINDOC_UPDATE_SCREENSHOTS")
    else Path(tempfile.mkdtemp(prefix="skindoc-screenshots-"))
)
HAM10000 = REPO_ROOT / "tests" / "fixtures" / "ham10000"
PASSWORD = "a long enough test passphrase"
PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1360, "height": 900}
# Chromium DevTools' "Slow 3G" preset: 2 s round trip, 400 kbit/s down and up (×0.8 as DevTools applies it).
SLOW_3G = {
    "offline": False,
    "latency": 2000,
    "downloadThroughput": 500 * 1000 / 8 * 0.8,
    "uploadThroughput": 500 * 1000 / 8 * 0.8,
}

# The machine is shared and often loaded: wait longer than Playwright's 5 s before calling a check failed.
expect.set_options(timeout=15_000)

pytestmark = pytest.mark.skipif(CHROMIUM is None and os.environ.get("CI") != "true", reason=SKIP_REASON)


class AppServer:
    """A `skindoc serve` process that a test can restart on the same port, as a deploy or crash would."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.server: LiveServer = start_server(env, log_path)
        self.url = self.server.url

    def crash(self) -> None:
        """SIGKILL: no goodbye to the clients, as when a node dies (a graceful stop waits for open sockets)."""
        self.server.process.kill()
        self.server.process.wait()

    def start_again(self) -> None:
        self.server = start_server(self.env, self.log_path, port=self.server.port)

    def stop(self) -> None:
        self.server.stop()

    def cli(self, *args: str, stdin: str = "") -> str:
        result = subprocess.run(
            [sys.executable, "-m", "web.cli", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env={**os.environ, **self.env},
            timeout=60,
            cwd=REPO_ROOT,
            check=False,
        )
        assert result.returncode == 0, f"skindoc {' '.join(args)}: {result.stderr[-2000:]}"
        return result.stdout


def server_env(settings, *, worker: bool, **extra: str) -> dict[str, str]:
    return {
        **extra,
        "SKINDOC_DATABASE_URL": settings.database_url,
        "SKINDOC_REDIS_URL": settings.redis_url,
        "SKINDOC_DATA_DIR": str(settings.data_dir),
        # Pub/sub ignores the Redis database number: a channel of our own keeps other test runs out.
        "SKINDOC_SOCKETIO_CHANNEL": f"skindoc-browser-{secrets.token_hex(4)}",
        "SKINDOC_TRIAGE_STREAM": f"skindoc:browser:{secrets.token_hex(4)}",
        "SKINDOC_INPROCESS_WORKER": "true" if worker else "false",
        "SKINDOC_ARGON2_TIME_COST": "1",
        "SKINDOC_ARGON2_MEMORY_KIB": "8",
        "SKINDOC_ARGON2_PARALLELISM": "1",
        "SKINDOC_LOG_FORMAT": "text",
    }


@pytest.fixture
def app_server(settings, tmp_path):
    server = AppServer(server_env(settings, worker=True), tmp_path / "server.log")
    yield server
    server.stop()


@pytest.fixture
def chat_server(settings, tmp_path):
    """Without the triage worker, so a restart takes a second rather than a model compilation."""
    server = AppServer(server_env(settings, worker=False), tmp_path / "server.log")
    yield server
    server.stop()


@pytest.fixture
def short_token_server(settings, tmp_path):
    """Access tokens that live four seconds, so a test sees several renewals."""
    server = AppServer(server_env(settings, worker=False, SKINDOC_ACCESS_TOKEN_TTL_S="4"), tmp_path / "server.log")
    yield server
    server.stop()


@pytest.fixture
async def browser():
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


async def new_page(browser: Browser, viewport: dict[str, int], errors: list[str]) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(viewport=viewport)
    page = await context.new_page()
    page.on("pageerror", lambda error: errors.append(f"{page.url}: {error}"))
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    return context, page


def drawn_lesion(path: Path, seed: int, size: tuple[int, int] = (1600, 1200)) -> Path:
    """A lesion drawn on skin, larger than a phone would need to send; the seed decides how it looks."""
    rng = random.Random(seed)
    image = Image.new("RGB", size, (rng.randint(150, 230), rng.randint(110, 180), rng.randint(90, 160)))
    draw = ImageDraw.Draw(image)
    cx, cy = size[0] // 2, size[1] // 2
    for _ in range(rng.randint(8, 30)):
        rx, ry = rng.randint(60, 400) * size[0] // 1600, rng.randint(60, 300) * size[1] // 1200
        dx, dy = rng.randint(-150, 150) * size[0] // 1600, rng.randint(-120, 120) * size[1] // 1200
        colour = (rng.randint(10, 120), rng.randint(0, 80), rng.randint(0, 90))
        draw.ellipse([cx + dx - rx, cy + dy - ry, cx + dx + rx, cy + dy + ry], fill=colour)
    image.filter(ImageFilter.GaussianBlur(rng.choice([2, 4, 8]))).save(path, "JPEG", quality=92)
    return path


# Drawn lesions the shipped classifier puts in each band, far from its thresholds (0.056 and 0.0083): run through
# triage's normalise_photo and decode_for_model, then predict, they score 0.25, 0.023 and 0.0016.
SEED_BY_BAND = {"urgent": 41, "soon": 13, "routine": 7}


def lesion_photo(path: Path) -> Path:
    """A real dermoscopy image from the HAM10000 fixtures when there is one, else a drawn lesion."""
    real = sorted(HAM10000.glob("*.jpg"))
    return real[0] if real else drawn_lesion(path, 1)


async def sign_up(page: Page, base_url: str, path: str, name: str, email: str) -> None:
    await page.goto(base_url + path)
    await page.get_by_role("tab", name="Create account" if path == "/" else "Request an account").click()
    await page.fill("#signup-name", name)
    await page.fill("#signup-email", email)
    await page.fill("#signup-password", PASSWORD)
    await page.locator("#form-signup button[type=submit]").click()


async def sign_in(page: Page, base_url: str, path: str, email: str) -> None:
    await page.goto(base_url + path)
    await page.fill("#signin-email", email)
    await page.fill("#signin-password", PASSWORD)
    await page.locator("#form-signin button[type=submit]").click()


async def open_consultation(page: Page, description: str, site: str, photo: Path) -> str:
    """Fills the new-consultation form, uploads the photo and returns the case id from the URL."""
    await page.get_by_role("button", name="New consultation").click()
    await page.fill("#new-description", description)
    await page.select_option("#new-site", site)
    # The weighted 7-point checklist, in the patient's words: grown (2) and several colours (2) make 4, urgent.
    await page.get_by_label("Has it grown").check()
    await page.get_by_label("several colours").check()
    await page.set_input_files("#new-photos", str(photo))
    await expect(page.locator("#new-photo-grid .photo-tile")).to_have_count(1)
    await assert_fits_the_screen(page)
    await page.get_by_role("button", name="Send to a doctor").click()
    await expect(page.locator("#view-case")).to_be_visible(timeout=60_000)
    return page.url.rsplit("/", 1)[1]


async def send_chat(page: Page, text: str, *, scope: str = "") -> None:
    await page.locator(f"{scope} .composer textarea").fill(text)
    await page.locator(f"{scope} .composer button[type=submit]").click()


async def assert_fits_the_screen(page: Page) -> None:
    """Nothing wider than the viewport: at 375 px a sideways scroll hides half of every line."""
    too_wide = await page.evaluate("""() => [...document.querySelectorAll('body *')]
        .filter((node) => node.offsetParent !== null
                && node.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5)
        .map((node) => `${node.tagName.toLowerCase()}#${node.id}.${node.className}`)""")
    assert too_wide == [], f"wider than the screen at {page.url}: {too_wide}"


def bubble(page: Page, text: str, scope: str = ""):
    return page.locator(f"{scope} .messages .bubble", has_text=text)


# ---- setting up people and cases over the HTTP API, for tests about one screen ----


async def api(http: aiohttp.ClientSession, method: str, url: str, token: str | None = None, **kwargs):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.request(method, url, headers=headers, **kwargs) as response:
        body = await response.json() if response.content_type.endswith("json") else None
        assert response.status < 300, (method, url, response.status, body)
        return body


async def register(http: aiohttp.ClientSession, server: AppServer, role: str, name: str) -> dict:
    email = f"{role}-{secrets.token_hex(4)}@example.com"
    await api(
        http,
        "POST",
        f"{server.url}/api/v1/auth/register",
        json={"email": email, "password": PASSWORD, "name": name, "role": role},
    )
    if role == "doctor":
        server.cli("admin", "approve", email)
    tokens = await api(http, "POST", f"{server.url}/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    return {"email": email, "token": tokens["access_token"], "id": tokens["user"]["id"]}


CHECKLIST_KEYS = (
    "size_changed",
    "shape_irregular",
    "colour_irregular",
    "diameter_7mm",
    "inflamed",
    "oozing",
    "sensation_changed",
)


async def api_consultation(
    http: aiohttp.ClientSession,
    server: AppServer,
    patient: dict,
    description: str,
    site: str,
    photo: Path | None,
    *,
    answers: tuple[str, ...] = (),
    tag: str | None = None,
) -> str:
    """A consultation whose checklist answers are yes for `answers`, with a photo of the kind `tag` says."""
    consultation = await api(
        http,
        "POST",
        f"{server.url}/api/v1/consultations",
        patient["token"],
        json={
            "description": description,
            "body_site": site,
            "symptoms": {**{key: key in answers for key in CHECKLIST_KEYS}, "duration": "months"},
        },
    )
    if photo is not None:
        form = aiohttp.FormData()
        form.add_field("body_site", site)
        if tag:
            form.add_field("tag", tag)
        form.add_field("photo", photo.read_bytes(), filename=photo.name, content_type="image/jpeg")
        await api(
            http, "POST", f"{server.url}/api/v1/consultations/{consultation['id']}/photos", patient["token"], data=form
        )
    return consultation["id"]


async def active_case(server: AppServer, tmp_path: Path) -> tuple[dict, dict, str]:
    """A patient and an approved doctor, with one consultation the doctor has taken."""
    async with aiohttp.ClientSession() as http:
        patient = await register(http, server, "patient", "Meera Rao")
        doctor = await register(http, server, "doctor", "Dr Omar Haddad")
        case_id = await api_consultation(
            http, server, patient, "A dark spot on my forearm.", "arm", drawn_lesion(tmp_path / "case.jpg", 3)
        )
        await api(http, "POST", f"{server.url}/api/v1/consultations/{case_id}/take", doctor["token"], json={})
    return patient, doctor, case_id


async def open_both(
    browser: Browser, server: AppServer, patient: dict, doctor: dict, case_id: str, errors: list[str]
) -> tuple[Page, Page]:
    _, patient_page = await new_page(browser, PHONE, errors)
    _, doctor_page = await new_page(browser, DESKTOP, errors)
    await sign_in(patient_page, server.url, "/", patient["email"])
    await expect(patient_page.locator("#view-home")).to_be_visible()
    await patient_page.goto(f"{server.url}/#/case/{case_id}")
    await expect(patient_page.locator("#case-status")).to_have_text("With a doctor")
    await sign_in(doctor_page, server.url, "/console", doctor["email"])
    await expect(doctor_page.locator("#case-panels .chat")).to_be_visible()
    return patient_page, doctor_page


async def shown_messages(page: Page) -> list[str]:
    return await page.locator(".messages .bubble .body").all_text_contents()


# ---- the tests ----


async def test_a_message_with_markup_is_shown_as_text_and_runs_nothing(chat_server, browser, tmp_path):
    errors: list[str] = []
    patient, doctor, case_id = await active_case(chat_server, tmp_path)
    patient_page, doctor_page = await open_both(browser, chat_server, patient, doctor, case_id, errors)
    hostile = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> <b>bold?</b>'
    await send_chat(patient_page, hostile)
    await expect(bubble(doctor_page, "window.__pwned = 2")).to_have_count(1)
    for page in (patient_page, doctor_page):
        assert (await shown_messages(page)) == [hostile]
        assert await page.locator(".messages img, .messages script, .messages b").count() == 0
        assert await page.evaluate("window.__pwned") is None
    # The same goes for the description a doctor reads.
    await expect(doctor_page.locator(".case-panel .title")).to_have_text("A dark spot on my forearm.")

    # Lengths count code points, as the server does: emoji up to the limit (twice as many UTF-16 units, which a
    # textarea's maxlength would cut short) go through whole; one more is refused before anything is sent.
    limit = await patient_page.evaluate(
        "JSON.parse(document.querySelector('meta[name=skindoc-config]').content).chat.max_message_chars"
    )
    note = patient_page.locator("#case-chat .warn")
    await send_chat(patient_page, "😀" * (limit + 1))
    await expect(note).to_have_text(f"1 character too many: a message holds up to {limit}.")
    await expect(patient_page.locator(".composer textarea")).to_have_value("😀" * (limit + 1))
    await send_chat(patient_page, "😀" * limit)
    await expect(note).to_have_text("")
    await expect(bubble(doctor_page, "😀")).to_have_count(1)
    await expect(bubble(patient_page, "😀")).to_have_attribute("data-state", re.compile("delivered|read"))
    for page in (patient_page, doctor_page):
        assert (await shown_messages(page)) == [hostile, "😀" * limit]
    assert errors == []


async def test_reconnecting_banner_on_server_restart_and_no_message_lost_or_doubled(chat_server, browser, tmp_path):
    errors: list[str] = []
    patient, doctor, case_id = await active_case(chat_server, tmp_path)
    patient_page, doctor_page = await open_both(browser, chat_server, patient, doctor, case_id, errors)
    await send_chat(doctor_page, "Good morning, I am looking at your photo now.")
    await send_chat(patient_page, "Thank you, doctor.")
    await expect(bubble(doctor_page, "Thank you, doctor.")).to_have_count(1)

    await asyncio.to_thread(chat_server.crash)
    for page in (patient_page, doctor_page):
        await expect(page.locator("#reconnecting")).to_be_visible()
    # Written while the server is down: kept as "sending" and delivered when it is back.
    await send_chat(patient_page, "Is it serious? (sent while offline)")
    await expect(bubble(patient_page, "sent while offline")).to_have_attribute("data-state", "sending")
    # Reloaded while the server is still down (the page cannot even load), then opened again once it is back:
    # the unsent message is still there and goes out once.
    await send_chat(patient_page, "Sent, then the page was reloaded")
    with contextlib.suppress(PlaywrightError):
        await patient_page.reload()
    await asyncio.to_thread(chat_server.start_again)
    await patient_page.goto(f"{chat_server.url}/#/case/{case_id}")

    for page in (patient_page, doctor_page):
        await expect(page.locator("#reconnecting")).to_be_hidden(timeout=15_000)
    await expect(bubble(doctor_page, "sent while offline")).to_have_count(1)
    await expect(bubble(doctor_page, "page was reloaded")).to_have_count(1)
    await expect(bubble(patient_page, "sent while offline")).not_to_have_attribute("data-state", "sending")
    await expect(bubble(patient_page, "page was reloaded")).not_to_have_attribute("data-state", "sending")
    await send_chat(doctor_page, "Not from what I see; let us keep an eye on it.")
    await send_chat(doctor_page, "I will propose a follow-up.")
    expected = [
        "Good morning, I am looking at your photo now.",
        "Thank you, doctor.",
        "Is it serious? (sent while offline)",
        "Sent, then the page was reloaded",
        "Not from what I see; let us keep an eye on it.",
        "I will propose a follow-up.",
    ]
    for page in (patient_page, doctor_page):
        await expect(page.locator(".messages .bubble .body")).to_have_text(expected)
    # And the server's log holds each of them exactly once, in this order.
    async with aiohttp.ClientSession() as http:
        stored = await api(
            http, "GET", f"{chat_server.url}/api/v1/consultations/{case_id}/messages?after_seq=0", patient["token"]
        )
    assert [m["body"] for m in stored["messages"]] == expected
    assert [m["seq"] for m in stored["messages"]] == [1, 2, 3, 4, 5, 6]
    assert errors == []


async def test_patient_flow_completes_on_slow_3g(chat_server, browser, tmp_path):
    errors: list[str] = []
    context, page = await new_page(browser, PHONE, errors)
    cdp = await context.new_cdp_session(page)
    await cdp.send("Network.enable")
    await cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
    await cdp.send("Network.emulateNetworkConditions", SLOW_3G)
    received: dict[str, float] = {}
    cdp.on(
        "Network.loadingFinished", lambda event: received.__setitem__(event["requestId"], event["encodedDataLength"])
    )

    started = time.monotonic()
    await page.goto(chat_server.url + "/", timeout=60_000)
    await expect(page.locator("#form-signin")).to_be_visible(timeout=60_000)
    await page.wait_for_load_state("networkidle", timeout=60_000)
    loaded_s = time.monotonic() - started
    weight = sum(received.values())
    print(
        f"\nSlow 3G: patient page weight {weight / 1024:.1f} KB in {len(received)} requests "
        f"(HTML, CSS, JS, icon; compressed, headers included), usable after {loaded_s:.1f} s"
    )
    assert weight < 200 * 1024

    # A phone camera's photo, far larger than needed: it must be downscaled before it goes over the air.
    big_photo = drawn_lesion(tmp_path / "camera.jpg", 5, size=(3200, 2400))
    await sign_up(page, chat_server.url, "/", "Ravi Kumar", f"ravi-{secrets.token_hex(4)}@example.com")
    await expect(page.locator("#view-home")).to_be_visible(timeout=60_000)
    case_id = await open_consultation(page, "A rough patch on my cheek that bleeds sometimes.", "face", big_photo)
    await expect(page.locator("#case-status")).to_have_text("Waiting for a doctor", timeout=60_000)
    await expect(page.locator("#case-photo-grid .photo-tile")).to_have_count(1, timeout=60_000)
    print(f"Slow 3G: sign-up, consultation and photo upload done after {time.monotonic() - started:.1f} s")

    token = await page.evaluate("sessionStorage.getItem('skindoc.patient.refresh')")
    async with aiohttp.ClientSession() as http:
        tokens = await api(http, "POST", f"{chat_server.url}/api/v1/auth/refresh", json={"refresh_token": token})
        photos = await api(
            http, "GET", f"{chat_server.url}/api/v1/consultations/{case_id}/photos", tokens["access_token"]
        )
    (photo,) = photos["photos"]
    assert max(photo["width"], photo["height"]) == 1280 and min(photo["width"], photo["height"]) == 960
    print(
        f"Slow 3G: {big_photo.stat().st_size / 1024:.0f} KB 3200x2400 photo sent as {photo['width']}x{photo['height']}"
    )
    assert errors == []


async def test_photo_errors_are_clear_and_a_lost_answer_is_retried_without_a_duplicate(chat_server, browser, tmp_path):
    errors: list[str] = []
    _, page = await new_page(browser, PHONE, errors)
    await sign_up(page, chat_server.url, "/", "Lena Novak", f"lena-{secrets.token_hex(4)}@example.com")
    await expect(page.locator("#view-home")).to_be_visible()
    await page.get_by_role("button", name="New consultation").click()
    form_error = page.locator("#form-new .form-error")

    tiny = tmp_path / "tiny.jpg"
    Image.new("RGB", (100, 90), (200, 150, 130)).save(tiny, "JPEG")
    await page.set_input_files("#new-photos", str(tiny))
    await expect(form_error).to_contain_text("100x90 pixels; each side must be at least 128")
    await expect(page.locator("#new-photo-grid .photo-tile")).to_have_count(0)

    await page.fill("#new-description", "Itchy red ring on my leg.")
    await page.select_option("#new-site", "leg")
    await page.set_input_files(
        "#new-photos",
        files=[
            {"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"these are not the pixels you are looking for"}
        ],
    )
    await page.get_by_role("button", name="Send to a doctor").click()
    await expect(page.locator("#new-photo-grid .photo-tile .error")).to_contain_text("is not a JPEG, PNG, WebP")
    await expect(form_error).to_contain_text("did not upload")
    await page.get_by_role("button", name="Remove notes.jpg").click()

    # The first upload reaches the server but its answer is lost; the browser retries the same bytes.
    answers_dropped: list[int] = []
    route_failures: list[str] = []

    async def drop_first_answer(route):
        if route.request.method != "POST" or answers_dropped:
            await route.continue_()
            return
        try:
            response = await route.fetch()  # the upload reaches the server...
            answers_dropped.append(response.status)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below, not lost in Playwright's loop
            route_failures.append(repr(exc))
        await route.abort("connectionreset")  # ...and the browser never hears back

    await page.route("**/api/v1/consultations/*/photos", drop_first_answer)
    await page.set_input_files("#new-photos", str(drawn_lesion(tmp_path / "ring.jpg", 7)))
    await page.get_by_role("button", name="Send to a doctor").click()
    await expect(page.locator("#view-case")).to_be_visible(timeout=30_000)
    assert route_failures == []
    assert answers_dropped == [201]
    await expect(page.locator("#case-photo-grid .photo-tile")).to_have_count(1)
    await page.reload()
    await expect(page.locator("#case-photo-grid .photo-tile")).to_have_count(1)

    # Changed their mind: the patient cancels (after confirming), and can no longer add photos.
    await page.get_by_role("button", name="Cancel this consultation").click()
    await expect(page.locator("#case-status")).to_have_text("Cancelled")
    await expect(page.locator("#case-add-photos")).to_be_hidden()
    assert errors == []


def blurred_photo(path: Path) -> Path:
    """A real lesion photographed with a shaking hand: a HAM10000 fixture at phone size, heavily blurred."""
    with Image.open(HAM10000 / "images" / "ISIC_0034253.jpg") as image:
        image.resize((1024, 768)).filter(ImageFilter.GaussianBlur(30)).save(path, "JPEG", quality=90)
    return path


async def test_patient_answers_the_checklist_and_is_offered_a_retake_for_a_blurred_photo(
    chat_server, browser, tmp_path
):
    errors: list[str] = []
    _, page = await new_page(browser, PHONE, errors)
    email = f"tomas-{secrets.token_hex(4)}@example.com"
    await sign_up(page, chat_server.url, "/", "Tomas Lind", email)
    await expect(page.locator("#view-home")).to_be_visible()
    await page.get_by_role("button", name="New consultation").click()
    # Every question of the checklist is asked, in plain words.
    await expect(page.locator("#new-checklist input[type=checkbox]")).to_have_count(7)
    await expect(page.locator("#new-checklist")).to_contain_text("wider than the end of a pencil")
    await page.fill("#new-description", "A mole on my calf that has grown; it oozed last week.")
    await page.select_option("#new-site", "leg")
    await page.get_by_label("Has it grown").check()
    await page.get_by_label("oozed, bled or crusted").check()

    # A sharp dermoscopy photo passes the check in the browser; a blurred one gets a retake hint and a button.
    await page.set_input_files("#new-photos", str(HAM10000 / "images" / "ISIC_0028434.jpg"))
    tiles = page.locator("#new-photo-grid .photo-tile")
    await expect(tiles).to_have_count(1)
    await expect(tiles.nth(0)).not_to_have_class(re.compile("retake"))
    await page.get_by_role("button", name="Remove ISIC_0028434.jpg").click()
    blurred = blurred_photo(tmp_path / "shaky.jpg")
    await page.set_input_files("#new-photos", str(blurred))
    await expect(tiles.nth(0)).to_have_class(re.compile("retake"))
    await expect(tiles.nth(0)).to_contain_text("Retake suggested: too blurred — hold the phone still")
    await expect(tiles.nth(0)).to_contain_text("You can still send this one")
    await assert_fits_the_screen(page)
    await page.screenshot(path=SCREENSHOTS / "patient-checklist.png", full_page=True)
    # Retake removes it; the patient tries again with the same shaky photo and sends it anyway.
    await tiles.nth(0).get_by_role("button", name="Retake").click()
    await expect(tiles).to_have_count(0)
    await page.set_input_files("#new-photos", str(blurred))
    await expect(tiles.nth(0)).to_contain_text("Retake suggested")
    await page.get_by_role("button", name="Send to a doctor").click()
    await expect(page.locator("#view-case")).to_be_visible(timeout=30_000)

    # Grown (2) and oozing (1) make 3: urgent on the checklist, whatever the photo.
    await expect(page.locator("#case-triage .band")).to_have_text("Urgent")
    await expect(page.locator("#case-triage")).to_contain_text("Your answers about the spot set your place")
    # The server measured the photo too, and says so beside it.
    await expect(page.locator("#case-photo-grid .photo-tile")).to_contain_text(
        "A clearer photo would help: too blurred"
    )
    case_id = page.url.rsplit("/", 1)[1]
    async with aiohttp.ClientSession() as http:
        tokens = await api(
            http, "POST", f"{chat_server.url}/api/v1/auth/login", json={"email": email, "password": PASSWORD}
        )
        consultation = await api(
            http, "GET", f"{chat_server.url}/api/v1/consultations/{case_id}", tokens["access_token"]
        )
        photos = (
            await api(http, "GET", f"{chat_server.url}/api/v1/consultations/{case_id}/photos", tokens["access_token"])
        )["photos"]
    assert consultation["checklist_score"] == 3 and consultation["symptoms"]["oozing"] is True
    assert consultation["symptoms"]["diameter_7mm"] is False
    assert [photo["kind"] for photo in photos] == ["camera_close_up"]
    assert "blurred" in photos[0]["quality"]["problems"]
    assert errors == []


async def wait_until_scored(http: aiohttp.ClientSession, server: AppServer, token: str, count: int) -> list[dict]:
    """The doctors' queue once every case in it has its triage score (the worker runs in the server)."""
    deadline = time.monotonic() + 90
    while True:
        queue = (await api(http, "GET", f"{server.url}/api/v1/queue", token))["queue"]
        if len(queue) == count and not any(entry["awaiting_score"] for entry in queue):
            return queue
        assert time.monotonic() < deadline, f"not scored in time: {queue}"
        await asyncio.sleep(0.5)


async def wait_for_saliency(http: aiohttp.ClientSession, server: AppServer, token: str, case_id: str) -> None:
    """The worker draws saliency overlays when it has nothing to score; wait until this case's is there."""
    deadline = time.monotonic() + 90
    url = f"{server.url}/api/v1/consultations/{case_id}/photos"
    while not all("saliency_url" in photo for photo in (await api(http, "GET", url, token))["photos"]):
        assert time.monotonic() < deadline, "no saliency overlay in time"
        await asyncio.sleep(0.5)


async def test_patient_and_doctor_carry_a_case_from_upload_to_resolution(app_server, browser, tmp_path):
    errors: list[str] = []
    url = app_server.url
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    suffix = secrets.token_hex(4)
    admin_email, doctor_email, patient_email = (f"{who}-{suffix}@example.com" for who in ("admin", "doctor", "asha"))

    # A doctor asks for an account; an administrator approves it in the console and finds it in the audit log.
    app_server.cli(
        "admin", "create", "--email", admin_email, "--name", "Clinic Admin", "--password-stdin", stdin=PASSWORD + "\n"
    )
    _, doctor_page = await new_page(browser, DESKTOP, errors)
    await sign_up(doctor_page, url, "/console", "Dr Amara Okafor", doctor_email)
    await expect(doctor_page.locator("#view-pending")).to_be_visible()
    _, admin_page = await new_page(browser, DESKTOP, errors)
    await sign_in(admin_page, url, "/console", admin_email)
    await admin_page.locator("#pending-doctors li", has_text=doctor_email).get_by_role("button", name="Approve").click()
    await expect(admin_page.locator("#pending-empty")).to_be_visible()
    await admin_page.fill("#audit-action", "admin.doctor_approve")
    await admin_page.get_by_role("button", name="Search").click()
    await expect(admin_page.locator("#audit-rows tr")).to_have_count(1)
    await admin_page.screenshot(path=SCREENSHOTS / "admin.png", full_page=True)

    # Three other patients are already waiting, one in each urgency band, so the queue has an order to show and
    # the console has each way of reaching a band to explain: the checklist alone (Jon), the checklist with a
    # camera photo whose urgent-looking score is not used (Ines), a trusted dermoscopy score raising it (Kofi).
    others = {}
    async with aiohttp.ClientSession() as http:
        for band, name, description, site, answers, photo, tag in [
            (
                "routine",
                "Jon Berg",
                "Scaly patch on my scalp, flaking for months.",
                "scalp",
                (),
                HAM10000 / "images" / "ISIC_0028434.jpg",
                "dermoscopic",
            ),
            (
                "soon",
                "Ines Duarte",
                "New mole on my shoulder that looks uneven.",
                "back",
                ("shape_irregular",),
                drawn_lesion(tmp_path / "soon.jpg", SEED_BY_BAND["urgent"]),
                "close_up",
            ),
            (
                "urgent",
                "Kofi Mensah",
                "Dark spot on my sole that has been bleeding.",
                "foot",
                ("oozing",),
                HAM10000 / "images" / "ISIC_0034253.jpg",
                "dermoscopic",
            ),
        ]:
            other = await register(http, app_server, "patient", name)
            others[
                await api_consultation(http, app_server, other, description, site, photo, answers=answers, tag=tag)
            ] = band

    # The patient, on a phone: signs up and opens a consultation with a photo of the lesion.
    _, patient_page = await new_page(browser, PHONE, errors)
    await sign_up(patient_page, url, "/", "Asha Patel", patient_email)
    await expect(patient_page.locator("#view-home")).to_be_visible()
    case_id = await open_consultation(
        patient_page,
        "A mole on my back that has grown and darkened since summer.",
        "back",
        lesion_photo(tmp_path / "asha.jpg"),
    )
    await expect(patient_page.locator("#case-status")).to_have_text("Waiting for a doctor")
    await expect(patient_page.locator("#case-facts")).to_contain_text("Place in queue")
    await expect(patient_page.locator("#case-triage .band")).to_have_text("Urgent")
    await expect(patient_page.locator("#case-triage")).to_contain_text("Your answers about the spot set your place")
    await expect(patient_page.locator("#case-triage")).to_contain_text("Screening aid, not a diagnosis")
    # Once scored, the patient reads in plain words that the photo check was not used for this phone photo.
    await expect(patient_page.locator("#case-triage")).to_contain_text(
        "The automatic photo check was not used", timeout=90_000
    )

    # The doctor, approved now, sees the four cases in the server's order, scores and bands shown.
    await doctor_page.get_by_role("button", name="Check again").click()
    await expect(doctor_page.locator("#view-console")).to_be_visible()
    async with aiohttp.ClientSession() as http:
        tokens = await api(http, "POST", f"{url}/api/v1/auth/login", json={"email": doctor_email, "password": PASSWORD})
        queue = await wait_until_scored(http, app_server, tokens["access_token"], 4)
    items = doctor_page.locator("#queue-list .queue-item")
    await expect(items).to_have_count(4)
    await expect(doctor_page.locator("#queue-list")).not_to_contain_text("Awaiting score")
    assert [await item.get_attribute("data-id") for item in await items.all()] == [
        entry["consultation_id"] for entry in queue
    ]
    assert {
        entry["consultation_id"]: entry["urgency"] for entry in queue if entry["consultation_id"] in others
    } == others
    rank = {"urgent": 0, "soon": 1, "routine": 2}
    bands = [rank[entry["effective_band"]] for entry in queue]
    assert bands == sorted(bands)
    for entry in queue:
        chip = doctor_page.locator(f'.queue-item[data-id="{entry["consultation_id"]}"] .band')
        await expect(chip).to_have_text(entry["effective_band"].capitalize())
        # Beside every score, the photo gate's verdict; below it, why the case has its band.
        item = doctor_page.locator(f'.queue-item[data-id="{entry["consultation_id"]}"]')
        await expect(item.locator(".gate")).to_contain_text(entry["gate"]["summary"])
        await expect(item.locator(".reasons li").first).to_have_text(entry["explanation"]["reasons"][0])
    by_id = {entry["consultation_id"]: entry for entry in queue}
    ines, kofi = (next(c for c, band in others.items() if band == wanted) for wanted in ("soon", "urgent"))
    assert not by_id[ines]["score_trusted"] and by_id[ines]["image_band"] == "urgent"
    assert by_id[ines]["gate"]["summary"].startswith("not used:") and "camera photo" in by_id[ines]["gate"]["summary"]
    assert by_id[kofi]["score_trusted"] and by_id[kofi]["checklist_band"] == "routine"
    assert by_id[kofi]["explanation"]["reasons"][-1] == "band urgent: raised by the photo score"
    assert by_id[case_id]["checklist_score"] == 4
    assert by_id[case_id]["gate"]["summary"].startswith("not used:")
    assert "camera photo" in by_id[case_id]["gate"]["summary"]
    await expect(doctor_page.locator("#queue-list .thumb[src^='blob:']")).to_have_count(4)
    await doctor_page.screenshot(path=SCREENSHOTS / "console-queue.png", full_page=True)

    # The doctor takes this case; both sides see it move.
    await doctor_page.locator(f'.queue-item[data-id="{case_id}"]').get_by_role("button", name="Take this one").click()
    await expect(items).to_have_count(3)
    await expect(doctor_page.locator("#capacity")).to_have_text("1/3")
    await expect(patient_page.locator("#case-status")).to_have_text("With a doctor")

    # The assigned doctor sees the per-class probabilities and the saliency overlay once the worker drew it.
    panel = doctor_page.locator(".case-panel:visible")
    # The photo gate's verdict on the photo, then the seven classes.
    await expect(panel.locator(".probs li")).to_have_count(8)
    await expect(panel.locator(".probs li").first).to_contain_text("Photo gate: not used:")
    await expect(panel.locator(".probs")).to_contain_text("Melanoma")
    await expect(panel.locator(".facts")).to_contain_text("checklist 4: size, colour")
    await expect(panel.locator(".viewer img:not(.overlay)")).to_have_attribute("src", re.compile("^blob:"))
    async with aiohttp.ClientSession() as http:
        await wait_for_saliency(http, app_server, tokens["access_token"], case_id)
    await panel.get_by_label("Show the saliency map").check()
    await expect(panel.locator(".viewer img.overlay")).to_be_visible()
    await expect(panel.locator(".viewer img.overlay")).to_have_attribute("src", re.compile("^blob:"))

    # Chat both ways: typing indicator, delivery and read ticks.
    await doctor_page.locator(".composer textarea").press_sequentially("Hello Asha")
    await expect(patient_page.locator(".typing")).to_have_text("The doctor is typing…")
    await doctor_page.locator(".composer textarea").fill("Hello Asha, I am Dr Okafor. Has it itched or bled?")
    await doctor_page.locator(".composer button[type=submit]").click()
    await expect(bubble(patient_page, "I am Dr Okafor")).to_have_count(1)
    await send_chat(patient_page, "It itches a little, it has never bled.")
    await expect(bubble(doctor_page, "never bled")).to_have_count(1)
    await expect(bubble(patient_page, "never bled")).to_have_attribute("data-state", "read")
    await expect(bubble(doctor_page, "I am Dr Okafor")).to_have_attribute("data-state", "read")

    # A follow-up: the first proposal does not suit the patient; the second, a video call, does. Both see it live.
    await doctor_page.get_by_label("Link or address").fill("Clinic room 4")
    await doctor_page.get_by_label("Kind").select_option("in_person")
    await doctor_page.get_by_role("button", name="Propose").click()
    await expect(patient_page.locator("#case-appointments")).to_contain_text("Your doctor proposes a follow-up")
    await patient_page.get_by_role("button", name="None of these suit me").click()
    await expect(doctor_page.locator(".case-panel")).to_contain_text("Declined by the patient")
    await doctor_page.get_by_label("Kind").select_option("video")
    await doctor_page.get_by_label("Link or address").fill("https://meet.example.org/skindoc-follow-up")
    await doctor_page.get_by_role("button", name="Propose").click()
    await expect(patient_page.get_by_role("button", name="Confirm this time")).to_be_visible()
    await patient_page.get_by_role("button", name="Confirm this time").click()
    await expect(patient_page.locator("#case-appointments")).to_contain_text("Confirmed")
    await expect(doctor_page.locator(".case-panel")).to_contain_text("Confirmed by the patient")
    await assert_fits_the_screen(patient_page)
    await patient_page.screenshot(path=SCREENSHOTS / "patient-case.png", full_page=True)
    await doctor_page.screenshot(path=SCREENSHOTS / "console-case.png", full_page=True)

    # The doctor resolves the case; the patient reads the outcome; the chat stays readable.
    await doctor_page.get_by_label("Outcome").select_option("monitor")
    await doctor_page.get_by_label("Working diagnosis").select_option("nv")
    await doctor_page.get_by_label("Note for the patient").fill("Photograph it monthly; come back if it changes.")
    await doctor_page.get_by_role("button", name="Resolve").click()
    await expect(doctor_page.locator("#no-cases")).to_be_visible()
    await expect(doctor_page.locator("#capacity")).to_have_text("0/3")
    await expect(patient_page.locator("#case-status")).to_have_text("Resolved")
    await expect(patient_page.locator("#case-outcome")).to_contain_text("Keep an eye on it")
    await expect(patient_page.locator("#case-outcome")).to_contain_text("Photograph it monthly")
    await expect(patient_page.locator(".composer")).to_be_hidden()
    await expect(bubble(patient_page, "never bled")).to_have_count(1)
    await patient_page.screenshot(path=SCREENSHOTS / "patient-resolved.png", full_page=True)

    # Both histories keep it.
    await patient_page.get_by_role("button", name="All consultations").click()
    await expect(patient_page.locator("#consultation-list li")).to_have_count(1)
    await expect(patient_page.locator("#consultation-list")).to_contain_text("Resolved")
    await expect(patient_page.locator("#appointment-list")).to_contain_text("Confirmed")
    await assert_fits_the_screen(patient_page)

    # Marked available, the doctor is given the waiting cases at once, up to their capacity.
    await doctor_page.get_by_label("Available for new cases").check()
    await expect(doctor_page.locator("#case-tabs [role=tab]")).to_have_count(3)
    await expect(doctor_page.locator("#capacity")).to_have_text("3/3")
    await expect(items).to_have_count(0)
    await expect(doctor_page.get_by_role("button", name="Take next")).to_be_disabled()
    # Away again, they hand one back to the queue, where it waits for the next doctor.
    await doctor_page.get_by_label("Available for new cases").uncheck()
    await panel.get_by_label("Reason").fill("Needs a paediatric dermatologist.")
    await panel.get_by_role("button", name="Transfer").click()
    await expect(doctor_page.locator("#case-tabs [role=tab]")).to_have_count(2)
    await expect(items).to_have_count(1)
    await expect(doctor_page.locator("#capacity")).to_have_text("2/3")
    await doctor_page.get_by_role("button", name="Take next").click()
    await expect(items).to_have_count(0)
    await expect(doctor_page.locator("#capacity")).to_have_text("3/3")
    assert errors == []


async def test_expiring_tokens_are_renewed_without_the_user_noticing(short_token_server, browser, tmp_path):
    errors: list[str] = []
    patient, doctor, case_id = await active_case(short_token_server, tmp_path)
    patient_page, doctor_page = await open_both(browser, short_token_server, patient, doctor, case_id, errors)
    watch_banner = """() => {
        window.__bannerShown = 0;
        new MutationObserver(() => { if (!document.querySelector('#reconnecting').hidden) window.__bannerShown++; })
            .observe(document.querySelector('#reconnecting'), { attributes: true });
    }"""
    for page in (patient_page, doctor_page):
        await page.evaluate(watch_banner)
    await patient_page.wait_for_timeout(9_000)  # two lifetimes of the first access token
    await send_chat(patient_page, "Still there?")
    await expect(bubble(doctor_page, "Still there?")).to_have_count(1)
    await send_chat(doctor_page, "Yes, still here.")
    await expect(bubble(patient_page, "Yes, still here.")).to_have_count(1)
    await patient_page.get_by_role("button", name="All consultations").click()  # HTTP with a renewed token
    await expect(patient_page.locator("#consultation-list li")).to_have_count(1)
    for page in (patient_page, doctor_page):
        assert await page.evaluate("window.__bannerShown") == 0
        await expect(page.locator("#sign-out")).to_be_visible()
    assert errors == []


async def test_sign_in_with_google_goes_through_the_providers_redirect(settings, tmp_path, browser, aiohttp_server):
    from joserfc.jwk import KeySet

    from tests.test_auth_oidc import CLIENT_ID, LocalIssuer

    issuer = LocalIssuer()
    authorize_requests = []

    async def discovery(request: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.json_response(
            {
                "issuer": issuer.url,
                "jwks_uri": f"{issuer.url}/jwks",
                "authorization_endpoint": f"{issuer.url}/o/authorize",
                "id_token_signing_alg_values_supported": ["RS256"],
            }
        )

    async def jwks(request: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.json_response(KeySet(issuer.keys).as_dict(private=False))

    async def authorize(request: aiohttp.web.Request) -> aiohttp.web.Response:
        """The provider's consent screen, already agreed to: back to the app with an ID token in the fragment."""
        query = request.query
        authorize_requests.append(dict(query))
        id_token = issuer.id_token(nonce=query["nonce"], email="priya@example.com", name="Priya Shah")
        raise aiohttp.web.HTTPFound(f"{query['redirect_uri']}#id_token={id_token}")

    issuer_app = aiohttp.web.Application()
    issuer_app.router.add_get("/.well-known/openid-configuration", discovery)
    issuer_app.router.add_get("/jwks", jwks)
    issuer_app.router.add_get("/o/authorize", authorize)
    issuer_server = await aiohttp_server(issuer_app, host="127.0.0.1")
    issuer.url = str(issuer_server.make_url("")).rstrip("/")
    env = server_env(settings, worker=False, SKINDOC_OIDC_ISSUER=issuer.url, SKINDOC_OIDC_CLIENT_ID=CLIENT_ID)
    server = await asyncio.to_thread(AppServer, env, tmp_path / "server.log")
    try:
        errors: list[str] = []
        context, page = await new_page(browser, PHONE, errors)
        await page.goto(server.url + "/")
        await page.get_by_role("button", name="Sign in with Google").click()
        await expect(page.locator("#view-home")).to_be_visible()
        await expect(page.locator("#who")).to_have_text("Priya Shah")
        (sent,) = authorize_requests
        assert sent["client_id"] == CLIENT_ID and sent["response_type"] == "id_token"
        assert sent["redirect_uri"] == server.url + "/" and len(sent["nonce"]) >= 32
        assert "id_token" not in page.url  # the token does not linger in the address bar or history
        assert errors == []
        await context.close()  # its socket open, a graceful stop of the server would wait for it
    finally:
        await asyncio.to_thread(server.stop)
