"""The patient app and the doctor console in headless Chromium against a real `skindoc serve`.

One browser context is the patient, another the doctor (and an admin approves the doctor), so
each has its own storage, exactly like two people on two devices. The server is a subprocess on
the test's own PostgreSQL database and Redis database, with its own Socket.IO channel.
"""
from __future__ import annotations

import asyncio
import os
import random
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFilter
import aiohttp
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from tests.live_server import LiveServer, start_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
REPO_ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = REPO_ROOT / "docs" / "screenshots"
HAM10000 = REPO_ROOT / "tests" / "fixtures" / "ham10000"
PASSWORD = "a long enough test passphrase"
PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1360, "height": 900}
# Chromium DevTools' "Slow 3G" preset: 2 s round trip, 400 kbit/s down and up (×0.8 as DevTools applies it).
SLOW_3G = {"offline": False, "latency": 2000, "downloadThroughput": 500 * 1000 / 8 * 0.8,
           "uploadThroughput": 500 * 1000 / 8 * 0.8}

pytestmark = pytest.mark.skipif(not CHROMIUM.exists() and os.environ.get("CI") != "true",
                                reason="Debian's Chromium is not installed (apt-get install chromium)")


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
        result = subprocess.run([sys.executable, "-m", "web.cli", *args], input=stdin, capture_output=True,
                                text=True, env={**os.environ, **self.env}, timeout=60, cwd=REPO_ROOT)
        assert result.returncode == 0, f"skindoc {' '.join(args)}: {result.stderr[-2000:]}"
        return result.stdout


def server_env(settings, *, worker: bool) -> dict[str, str]:
    return {
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


def lesion_photo(path: Path, seed: int, size: tuple[int, int] = (1600, 1200)) -> Path:
    """A real HAM10000 image when the fixtures hold one; otherwise a drawn lesion on skin, larger than needed."""
    real = sorted(HAM10000.glob("*.jpg"))
    if real:
        return real[seed % len(real)]
    rng = random.Random(seed)
    image = Image.new("RGB", size, (224 - rng.randint(0, 30), 178 - rng.randint(0, 30), 150 - rng.randint(0, 30)))
    draw = ImageDraw.Draw(image)
    cx, cy = size[0] // 2, size[1] // 2
    for step in range(12):
        rx, ry = rng.randint(150, 320) - step * 10, rng.randint(120, 260) - step * 8
        shade = 90 - step * 6 + rng.randint(-10, 10)
        draw.ellipse([cx - rx + rng.randint(-25, 25), cy - ry + rng.randint(-25, 25),
                      cx + rx + rng.randint(-25, 25), cy + ry + rng.randint(-25, 25)],
                     fill=(shade + 40, shade + 10, shade))
    image.filter(ImageFilter.GaussianBlur(4)).save(path, "JPEG", quality=92)
    return path


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
    await page.get_by_label("changed in colour").check()
    await page.get_by_label("itched").check()
    await page.set_input_files("#new-photos", str(photo))
    await expect(page.locator("#new-photo-grid .photo-tile")).to_have_count(1)
    await page.get_by_role("button", name="Send to a doctor").click()
    await expect(page.locator("#view-case")).to_be_visible(timeout=60_000)
    return page.url.rsplit("/", 1)[1]


async def send_chat(page: Page, text: str, *, scope: str = "") -> None:
    await page.locator(f"{scope} .composer textarea").fill(text)
    await page.locator(f"{scope} .composer button[type=submit]").click()


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
    await api(http, "POST", f"{server.url}/api/v1/auth/register",
              json={"email": email, "password": PASSWORD, "name": name, "role": role})
    if role == "doctor":
        server.cli("admin", "approve", email)
    tokens = await api(http, "POST", f"{server.url}/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    return {"email": email, "token": tokens["access_token"], "id": tokens["user"]["id"]}


async def api_consultation(http: aiohttp.ClientSession, server: AppServer, patient: dict, description: str,
                           site: str, photo: Path | None) -> str:
    consultation = await api(http, "POST", f"{server.url}/api/v1/consultations", patient["token"], json={
        "description": description, "body_site": site,
        "symptoms": {"changed_size": True, "changed_shape": False, "changed_colour": True, "bleeding": False,
                     "itching": False, "duration": "months"}})
    if photo is not None:
        form = aiohttp.FormData()
        form.add_field("body_site", site)
        form.add_field("photo", photo.read_bytes(), filename=photo.name, content_type="image/jpeg")
        await api(http, "POST", f"{server.url}/api/v1/consultations/{consultation['id']}/photos",
                  patient["token"], data=form)
    return consultation["id"]


async def active_case(server: AppServer, tmp_path: Path) -> tuple[dict, dict, str]:
    """A patient and an approved doctor, with one consultation the doctor has taken."""
    async with aiohttp.ClientSession() as http:
        patient = await register(http, server, "patient", "Meera Rao")
        doctor = await register(http, server, "doctor", "Dr Omar Haddad")
        case_id = await api_consultation(http, server, patient, "A dark spot on my forearm.", "arm",
                                         lesion_photo(tmp_path / "case.jpg", 3))
        await api(http, "POST", f"{server.url}/api/v1/consultations/{case_id}/take", doctor["token"], json={})
    return patient, doctor, case_id


async def open_both(browser: Browser, server: AppServer, patient: dict, doctor: dict, case_id: str,
                    errors: list[str]) -> tuple[Page, Page]:
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
    await asyncio.to_thread(chat_server.start_again)

    for page in (patient_page, doctor_page):
        await expect(page.locator("#reconnecting")).to_be_hidden(timeout=15_000)
    await expect(bubble(doctor_page, "sent while offline")).to_have_count(1, timeout=15_000)
    await expect(bubble(patient_page, "sent while offline")).not_to_have_attribute("data-state", "sending")
    await send_chat(doctor_page, "Not from what I see; let us keep an eye on it.")
    await send_chat(doctor_page, "I will propose a follow-up.")
    expected = ["Good morning, I am looking at your photo now.", "Thank you, doctor.",
                "Is it serious? (sent while offline)", "Not from what I see; let us keep an eye on it.",
                "I will propose a follow-up."]
    for page in (patient_page, doctor_page):
        await expect(page.locator(".messages .bubble .body")).to_have_text(expected)
    # And the server's log holds each of them exactly once, in this order.
    async with aiohttp.ClientSession() as http:
        stored = await api(http, "GET", f"{chat_server.url}/api/v1/consultations/{case_id}/messages?after_seq=0",
                           patient["token"])
    assert [m["body"] for m in stored["messages"]] == expected
    assert [m["seq"] for m in stored["messages"]] == [1, 2, 3, 4, 5]
    assert errors == []
