"""What the chaos tests share: the system as processes (web nodes, workers), its users, and what they did.

A `System` runs real `skindoc serve` and `skindoc worker` processes against servers the test
owns (tests.chaos_servers). Its users chat and upload through real sockets and record every
acknowledgement, so that after a fault a test can check that nothing acknowledged was lost or
doubled, that every accepted photo was scored, and how long recovery took.
"""
from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import socketio

from tests.chaos_servers import OwnedPostgres, OwnedRedis
from tests.live_server import LiveServer, free_port, start_server
from tests.test_chat_support import SYMPTOMS
from tests.test_triage_support import PASSWORD, jpeg

# Short retries, backoffs and heartbeats, so that a whole fault and its recovery fit in seconds.
FAST_RECOVERY_ENV = {
    "SKINDOC_TRIAGE_RECONCILE_S": "2", "SKINDOC_TRIAGE_RECONCILE_GRACE_S": "1", "SKINDOC_TRIAGE_HEARTBEAT_S": "1",
    "SKINDOC_TRIAGE_RETRY_MAX_S": "1", "SKINDOC_TRIAGE_CLAIM_IDLE_MS": "2000", "SKINDOC_TRIAGE_MAX_BATCH": "4",
    "SKINDOC_TRIAGE_SALIENCY": "false", "SKINDOC_ARGON2_TIME_COST": "1", "SKINDOC_ARGON2_MEMORY_KIB": "1024",
    "SKINDOC_PRESENCE_GRACE_SECONDS": "3", "SKINDOC_LOG_FORMAT": "json", "SKINDOC_TRIAGE_MAX_PHOTOS": "60",
}
# After the store is back, every accepted photo is scored within this long.
SCORING_BOUND_S = 60.0
# A worker process loads the model and compiles its batch sizes before it is ready.
WORKER_READY_S = 180.0


@pytest.fixture(scope="module")
def owned_postgres():
    server = OwnedPostgres()
    server.init()
    server.start()
    yield server
    server.destroy()


@pytest.fixture
def owned_redis():
    server = OwnedRedis()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def system(owned_postgres, owned_redis, tmp_path):
    """The test's processes, on a fresh database of the owned PostgreSQL and the owned Redis."""
    env = system_env(await create_database(owned_postgres.url()), owned_redis.url())
    running = System(env, tmp_path)
    yield running
    running.stop()


def http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def triage_status(node_url: str) -> str | None:
    """What a web node's readiness says about scoring (ok / degraded / down / unknown)."""
    try:
        with urllib.request.urlopen(f"{node_url}/readyz", timeout=2) as response:
            return json.loads(response.read())["checks"]["triage"]["status"]
    except urllib.error.HTTPError as error:
        return json.loads(error.read())["checks"]["triage"]["status"]
    except OSError:
        return None


async def wait_until(check, timeout: float, what: str, interval: float = 0.1) -> float:
    """Polls `check()` (sync or async) until it is truthy; returns the seconds it took."""
    started = time.monotonic()
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return time.monotonic() - started
        assert time.monotonic() - started < timeout, f"{what}: not within {timeout} s"
        await asyncio.sleep(interval)


@dataclass
class WorkerProcess:
    process: subprocess.Popen
    health_port: int
    log_path: Path

    @property
    def ready_url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}/readyz"

    def ready(self) -> bool:
        return http_status(self.ready_url) == 200

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class System:
    """Web nodes and triage workers on one database and one Redis, with the test's settings."""
    env: dict[str, str]
    workdir: Path
    nodes: list[LiveServer] = field(default_factory=list)
    workers: list[WorkerProcess] = field(default_factory=list)

    def start_node(self) -> LiveServer:
        node = start_server(self.env, self.workdir / f"node{len(self.nodes)}.log")
        self.nodes.append(node)
        return node

    def start_worker(self) -> WorkerProcess:
        port = free_port()
        log_path = self.workdir / f"worker{len(self.workers)}.log"
        env = {**os.environ, **self.env, "SKINDOC_WORKER_HEALTH_PORT": str(port)}
        process = subprocess.Popen([sys.executable, "-m", "web.cli", "worker"], env=env,
                                   stdout=open(log_path, "ab"), stderr=subprocess.STDOUT)
        worker = WorkerProcess(process, port, log_path)
        self.workers.append(worker)
        return worker

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        for node in self.nodes:
            node.stop()


def system_env(database_url: str, redis_url: str) -> dict[str, str]:
    return {**FAST_RECOVERY_ENV, "SKINDOC_DATABASE_URL": database_url, "SKINDOC_REDIS_URL": redis_url,
            "SKINDOC_SOCKETIO_CHANNEL": f"chaos-{secrets.token_hex(4)}"}


async def create_database(server_url: str) -> str:
    """A fresh, empty database on the owned server; the first node to start migrates it."""
    name = f"chaos_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return server_url.rsplit("/", 1)[0] + f"/{name}"


# ---- users --------------------------------------------------------------------------------------


async def register(session: aiohttp.ClientSession, url: str, role: str) -> str:
    email = f"{role}-{secrets.token_hex(5)}@example.org"
    async with session.post(f"{url}/api/v1/auth/register",
                            json={"email": email, "password": PASSWORD, "name": f"Chaos {role}", "role": role}) as r:
        assert r.status == 201, await r.text()
    return email


async def sign_in(session: aiohttp.ClientSession, url: str, email: str) -> dict[str, str]:
    async with session.post(f"{url}/api/v1/auth/login", json={"email": email, "password": PASSWORD}) as r:
        assert r.status == 200, await r.text()
        return {"Authorization": f"Bearer {(await r.json())['access_token']}"}


def approve_doctor(env: dict[str, str], email: str) -> None:
    """The administrator's command, run beside the nodes as an operator would."""
    subprocess.run([sys.executable, "-m", "web.cli", "admin", "approve", email], env={**os.environ, **env},
                   check=True, capture_output=True, timeout=120)


async def open_case(session: aiohttp.ClientSession, node_url: str) -> tuple[dict, str]:
    """A new patient's open case: (patient headers, case id)."""
    patient = await sign_in(session, node_url, await register(session, node_url, "patient"))
    async with session.post(f"{node_url}/api/v1/consultations", headers=patient,
                            json={"description": "A mole that changed", "body_site": "back", "symptoms": SYMPTOMS}) as r:
        assert r.status == 201, await r.text()
        return patient, (await r.json())["id"]


async def paired_case(session: aiohttp.ClientSession, node_url: str, env: dict[str, str]) -> tuple[dict, dict, str]:
    """A patient's open case taken by an approved doctor: (patient headers, doctor headers, case id)."""
    doctor_email = await register(session, node_url, "doctor")
    await asyncio.to_thread(approve_doctor, env, doctor_email)
    doctor = await sign_in(session, node_url, doctor_email)
    patient, case_id = await open_case(session, node_url)
    async with session.post(f"{node_url}/api/v1/consultations/{case_id}/take", headers=doctor) as r:
        assert r.status == 200, await r.text()
    return patient, doctor, case_id


# ---- chatting through a fault --------------------------------------------------------------------


class ChatSender:
    """Sends numbered messages one after another and records each acknowledged one (client id → seq).

    As the real-time API asks of a client: a `store_unavailable` ack means "not stored, send it
    again" (same client id); a dropped connection means reconnecting (to `urls`, in turn) and
    sending the unacknowledged message again.
    """

    def __init__(self, urls: list[str], headers: dict[str, str], case_id: str, prefix: str) -> None:
        self.urls = urls
        self.token = headers["Authorization"].removeprefix("Bearer ")
        self.case_id = case_id
        self.prefix = prefix
        self.acked: dict[str, int] = {}
        self.refused: list[dict[str, Any]] = []
        self.reconnects = 0
        self.last_ack_at = 0.0
        self._client: socketio.AsyncClient | None = None
        self._dropped = asyncio.Event()
        self._stop = asyncio.Event()

    async def _connected(self) -> socketio.AsyncClient:
        while self._client is None or not self._client.connected:
            url = self.urls[self.reconnects % len(self.urls)]
            client = socketio.AsyncClient(reconnection=False)
            dropped = asyncio.Event()
            client.on("disconnect", lambda *args: dropped.set())
            try:
                await client.connect(url, auth={"token": self.token}, transports=["websocket"], wait_timeout=3)
                self._client, self._dropped = client, dropped
            except Exception:
                self.reconnects += 1
                await asyncio.sleep(0.2)
        return self._client

    async def send_until_stopped(self, pause_s: float = 0.02) -> None:
        n = 0
        while not self._stop.is_set():
            client_msg_id = f"{self.prefix}-{n}"
            while client_msg_id not in self.acked:
                await self._send(client_msg_id)
            n += 1
            await asyncio.sleep(pause_s)

    async def _send(self, client_msg_id: str) -> None:
        client = await self._connected()
        sending = asyncio.ensure_future(client.call("message:send", {
            "consultation_id": self.case_id, "client_msg_id": client_msg_id, "body": f"message {client_msg_id}"},
            timeout=5))
        dropped = asyncio.ensure_future(self._dropped.wait())
        await asyncio.wait({sending, dropped}, return_when=asyncio.FIRST_COMPLETED)
        dropped.cancel()
        try:
            if not sending.done():
                sending.cancel()
                raise ConnectionError("the connection dropped before the ack")
            ack = sending.result()
        except Exception:
            # No ack: the connection dropped (or the node died). Not known to be stored: send again.
            await client.disconnect()
            self.reconnects += 1
            return
        if ack.get("ok"):
            self.acked[client_msg_id] = ack["message"]["seq"]
            self.last_ack_at = time.monotonic()
            return
        assert ack["error"]["code"] == "store_unavailable", ack
        self.refused.append(ack["error"])
        await asyncio.sleep(0.2)

    async def stop(self) -> None:
        self._stop.set()

    async def close(self) -> None:
        if self._client is not None and self._client.connected:
            await self._client.disconnect()

    async def history(self) -> list[dict[str, Any]]:
        """Every stored message of the case, in order, read back through message:sync pages."""
        client = await self._connected()
        messages: list[dict[str, Any]] = []
        while True:
            ack = await client.call("message:sync", {"consultation_id": self.case_id,
                                                     "after_seq": messages[-1]["seq"] if messages else 0}, timeout=10)
            assert ack["ok"], ack
            messages += ack["messages"]
            if not ack["has_more"]:
                return messages


def assert_nothing_lost_or_doubled(history: list[dict[str, Any]], *senders: ChatSender) -> None:
    seqs = [m["seq"] for m in history]
    assert seqs == list(range(1, len(seqs) + 1)), "in order, no gap, no duplicate"
    ids = [m["client_msg_id"] for m in history]
    assert len(ids) == len(set(ids)), "no message stored twice"
    by_id = {m["client_msg_id"]: m["seq"] for m in history}
    for sender in senders:
        assert sender.acked, f"{sender.prefix} got no acknowledgement at all"
        for client_msg_id, seq in sender.acked.items():
            assert by_id.get(client_msg_id) == seq, f"acknowledged {client_msg_id} (seq {seq}) is missing"


# ---- uploading through a fault -------------------------------------------------------------------


class Uploader:
    """Uploads a new photo now and then; records which were accepted (201) and which were refused (503)."""

    def __init__(self, url: str, headers: dict[str, str], case_id: str, seed: int) -> None:
        self.url = url
        self.headers = headers
        self.case_id = case_id
        self.seed = seed
        self.accepted: list[str] = []
        self.refused: list[int] = []

    async def upload_one(self, session: aiohttp.ClientSession, photos: int = 1) -> int | None:
        """Uploads `photos` new photos in one request; returns the status (None: no answer)."""
        form = aiohttp.FormData(default_to_multipart=True)
        form.add_field("body_site", "back")
        for _ in range(photos):
            form.add_field("photo", jpeg(seed=self.seed), filename="lesion.jpg", content_type="image/jpeg")
            self.seed += 1
        try:
            async with session.post(f"{self.url}/api/v1/consultations/{self.case_id}/photos", data=form,
                                    headers=self.headers) as r:
                body = await r.json(content_type=None)
                if r.status == 201:
                    self.accepted += [p["id"] for p in body["photos"] if not p["duplicate"]]
                else:
                    assert r.status == 503 and body["code"] == "store_unavailable", (r.status, body)
                    assert "Retry-After" in r.headers
                    self.refused.append(r.status)
                return r.status
        except aiohttp.ClientError:
            return None


async def photos_scored(database_url: str, photo_ids: list[str]) -> dict[str, int]:
    """For each photo, how many score rows it has (exactly one per model version is right)."""
    try:
        conn = await asyncpg.connect(database_url, timeout=2)
    except (OSError, asyncpg.PostgresError, asyncio.TimeoutError):
        return {}
    try:
        rows = await conn.fetch("SELECT p.id::text AS id, count(s.photo_id) AS n FROM triage_photos p "
                                "LEFT JOIN triage_photo_scores s ON s.photo_id = p.id "
                                "WHERE p.id = ANY($1::uuid[]) GROUP BY p.id", photo_ids)
    finally:
        await conn.close()
    return {r["id"]: r["n"] for r in rows}


async def wait_all_scored(database_url: str, photo_ids: list[str], timeout: float = SCORING_BOUND_S) -> float:
    async def done() -> bool:
        counts = await photos_scored(database_url, photo_ids)
        return len(counts) == len(photo_ids) and all(n >= 1 for n in counts.values())

    took = await wait_until(done, timeout, "every accepted photo scored", interval=0.2)
    counts = await photos_scored(database_url, photo_ids)
    assert set(counts.values()) == {1}, f"a photo scored more than once: {counts}"
    return took


def report(fault: str, **seconds: float) -> None:
    """One line per fault, found with `grep RECOVERY` in pytest's -s output."""
    figures = " ".join(f"{name}={value:.2f}s" for name, value in seconds.items())
    print(f"\nRECOVERY {fault}: {figures}")
