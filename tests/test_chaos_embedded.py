"""`make run` as a newcomer does it: embedded `skindoc serve`, the README's admin commands beside it, a
photo scored, then stopping it. The commands use the server's embedded PostgreSQL and Redis and stop
neither; stopping the server (SIGTERM or Ctrl-C) leaves no process behind, and the data stays."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from tests.chaos_support import FAST_RECOVERY_ENV, open_case, register, report, sign_in, wait_until
from tests.live_server import http_status, start_server
from tests.test_triage_support import PASSWORD, jpeg

READY_S = 180.0


def _processes_using(folder: Path) -> list[str]:
    """Command lines of live processes that name the folder (the embedded postgres and redis-server do)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(folder) in text and cmdline.parent.name != str(os.getpid()):
            found.append(f"{cmdline.parent.name}: {text[:200]}")
    return found


def _skindoc(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "web.cli", *args],
        env={**os.environ, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
    )


def _embedded_env(data_dir: Path) -> dict[str, str]:
    env = {**FAST_RECOVERY_ENV, "SKINDOC_DATA_DIR": str(data_dir)}
    return {k: v for k, v in env.items() if k not in ("SKINDOC_DATABASE_URL", "SKINDOC_REDIS_URL")}


async def _upload_and_wait_for_score(session: aiohttp.ClientSession, url: str) -> float:
    patient, case_id = await open_case(session, url)
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("body_site", "arm")
    form.add_field("photo", jpeg(seed=5), filename="spot.jpg", content_type="image/jpeg")
    async with session.post(f"{url}/api/v1/consultations/{case_id}/photos", data=form, headers=patient) as r:
        assert r.status == 201, await r.text()

    async def scored() -> bool:
        async with session.get(f"{url}/api/v1/consultations/{case_id}/triage", headers=patient) as r:
            return (await r.json())["photos"]["scored"] == 1

    return await wait_until(scored, READY_S, "the photo scored by the in-process worker", interval=0.3)


async def _sign_in_and_out(session: aiohttp.ClientSession, url: str, email: str) -> dict[str, str]:
    """Signs in and out again; returns the signed-out access token's headers."""
    async with session.post(f"{url}/api/v1/auth/login", json={"email": email, "password": PASSWORD}) as r:
        tokens = await r.json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    async with session.post(
        f"{url}/api/v1/auth/logout", headers=headers, json={"refresh_token": tokens["refresh_token"]}
    ) as r:
        assert r.status == 204, await r.text()
    async with session.get(f"{url}/api/v1/me", headers=headers) as r:
        assert r.status == 401
    return headers


def _stop_and_check_nothing_left(server, data_dir: Path, sig: int) -> float:
    stopping = time.monotonic()
    server.process.send_signal(sig)
    assert server.process.wait(timeout=60) == 0
    took = time.monotonic() - stopping
    assert _processes_using(data_dir) == [], "an embedded server outlived `skindoc serve`"
    assert not (data_dir / "embedded.json").exists()
    return took


async def test_embedded_serve_with_admin_commands_beside_it_then_stop_leaves_nothing(tmp_path, monkeypatch):
    for name in ("SKINDOC_DATABASE_URL", "SKINDOC_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    data_dir = (tmp_path / "var").resolve()
    env = _embedded_env(data_dir)
    server = start_server(env, tmp_path / "first.log", ready_timeout=READY_S)
    try:
        created = await asyncio.to_thread(
            _skindoc,
            env,
            "admin",
            "create",
            "--email",
            "admin@example.org",
            "--name",
            "Clinic admin",
            "--password-stdin",
            stdin=PASSWORD + "\n",
        )
        assert created.returncode == 0, created.stderr
        async with aiohttp.ClientSession() as session:
            doctor_email = await register(session, server.url, "doctor")
            approved = await asyncio.to_thread(_skindoc, env, "admin", "approve", doctor_email)
            assert approved.returncode == 0, approved.stderr
            # The commands used the server's Redis and left it running: the server is still whole.
            assert http_status(f"{server.url}/readyz") == 200
            running = _processes_using(data_dir)
            assert any("redis-server" in p for p in running) and any("postgres" in p for p in running), running
            await sign_in(session, server.url, doctor_email)
            signed_out = await _sign_in_and_out(session, server.url, "admin@example.org")
            scored = await _upload_and_wait_for_score(session, server.url)
    finally:
        stop_s = _stop_and_check_nothing_left(server, data_dir, signal.SIGTERM)

    # Run alone, a command starts its own servers and stops them.
    assert (await asyncio.to_thread(_skindoc, env, "migrate")).returncode == 0
    assert _processes_using(data_dir) == []

    # The data outlives the servers; Ctrl-C stops the server as cleanly as SIGTERM.
    server = start_server(env, tmp_path / "second.log", ready_timeout=READY_S)
    try:
        async with aiohttp.ClientSession() as session:
            await sign_in(session, server.url, "admin@example.org")
            # Redis's snapshot came back too: a signed-out token stays signed out.
            async with session.get(f"{server.url}/api/v1/me", headers=signed_out) as r:
                assert r.status == 401
    finally:
        _stop_and_check_nothing_left(server, data_dir, signal.SIGINT)
    report("embedded-serve", photo_scored_after_upload=scored, serve_stop=stop_s)
