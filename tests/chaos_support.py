"""What the chaos tests share: the servers they own, the system as processes (web nodes, workers), accounts.

A `System` runs real `skindoc serve` and `skindoc worker` processes against servers the test
owns (tests.chaos_servers); tests.chaos_clients has the users who chat and upload through it.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from tests.chaos_servers import OwnedPostgres, OwnedRedis
from tests.live_server import (
    CHEAP_ACCOUNTS_ENV,
    LiveServer,
    create_database,
    start_server,
    start_worker,
)
from tests.test_chat_support import SYMPTOMS
from tests.test_triage_support import PASSWORD

# Short retries, backoffs and heartbeats, so that a whole fault and its recovery fit in seconds.
FAST_RECOVERY_ENV = {
    **CHEAP_ACCOUNTS_ENV,
    "SKINDOC_TRIAGE_RECONCILE_S": "2",
    "SKINDOC_TRIAGE_RECONCILE_GRACE_S": "1",
    "SKINDOC_TRIAGE_HEARTBEAT_S": "1",
    "SKINDOC_TRIAGE_RETRY_MAX_S": "1",
    "SKINDOC_TRIAGE_CLAIM_IDLE_MS": "2000",
    "SKINDOC_TRIAGE_MAX_BATCH": "4",
    "SKINDOC_TRIAGE_SALIENCY": "false",
    "SKINDOC_PRESENCE_GRACE_SECONDS": "3",
    "SKINDOC_LOG_FORMAT": "json",
    "SKINDOC_TRIAGE_MAX_PHOTOS": "60",
}
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
    # A fresh, empty database on the owned server (gone with the server); the first node to start migrates it.
    database_url = await create_database(owned_postgres.url(), f"chaos_{secrets.token_hex(4)}")
    env = system_env(database_url, owned_redis.url())
    running = System(env, tmp_path)
    yield running
    running.stop()


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
class System:
    """Web nodes and triage workers on one database and one Redis, with the test's settings."""

    env: dict[str, str]
    workdir: Path
    nodes: list[LiveServer] = field(default_factory=list)
    workers: list[LiveServer] = field(default_factory=list)

    def start_node(self) -> LiveServer:
        node = start_server(self.env, self.workdir / f"node{len(self.nodes)}.log")
        self.nodes.append(node)
        return node

    def start_worker(self) -> LiveServer:
        """A worker process, not yet ready: the test waits for `worker.ready` when it needs to."""
        worker = start_worker(self.env, self.workdir / f"worker{len(self.workers)}.log")
        self.workers.append(worker)
        return worker

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        for node in self.nodes:
            node.stop()


def system_env(database_url: str, redis_url: str) -> dict[str, str]:
    return {
        **FAST_RECOVERY_ENV,
        "SKINDOC_DATABASE_URL": database_url,
        "SKINDOC_REDIS_URL": redis_url,
        "SKINDOC_SOCKETIO_CHANNEL": f"chaos-{secrets.token_hex(4)}",
    }


# ---- users --------------------------------------------------------------------------------------


async def register(session: aiohttp.ClientSession, url: str, role: str) -> str:
    email = f"{role}-{secrets.token_hex(5)}@example.org"
    async with session.post(
        f"{url}/api/v1/auth/register",
        json={"email": email, "password": PASSWORD, "name": f"Chaos {role}", "role": role},
    ) as r:
        assert r.status == 201, await r.text()
    return email


async def sign_in(session: aiohttp.ClientSession, url: str, email: str) -> dict[str, str]:
    async with session.post(f"{url}/api/v1/auth/login", json={"email": email, "password": PASSWORD}) as r:
        assert r.status == 200, await r.text()
        return {"Authorization": f"Bearer {(await r.json())['access_token']}"}


def approve_doctor(env: dict[str, str], email: str) -> None:
    """The administrator's command, run beside the nodes as an operator would."""
    subprocess.run(
        [sys.executable, "-m", "web.cli", "admin", "approve", email],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        timeout=120,
    )


async def open_case(session: aiohttp.ClientSession, node_url: str) -> tuple[dict, str]:
    """A new patient's open case: (patient headers, case id)."""
    patient = await sign_in(session, node_url, await register(session, node_url, "patient"))
    case = {"description": "A mole that changed", "body_site": "back", "symptoms": SYMPTOMS}
    async with session.post(f"{node_url}/api/v1/consultations", headers=patient, json=case) as r:
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


def report(fault: str, **seconds: float) -> None:
    """One line per fault, found with `grep RECOVERY` in pytest's -s output."""
    figures = " ".join(f"{name}={value:.2f}s" for name, value in seconds.items())
    print(f"\nRECOVERY {fault}: {figures}")
