"""Real SkinDoc processes for tests and benchmarks: `skindoc serve`, `skindoc worker` or any HTTP process on
a free port, started and waited for until its /readyz answers 200; and scratch PostgreSQL databases.

Tests and bench/ both start processes through this module, so there is one way to do it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from store.postgres import with_database

# Accounts at the cheapest argon2id cost and registrations unthrottled: setting up many accounts from
# 127.0.0.1 is not what a test or a benchmark measures.
CHEAP_ACCOUNTS_ENV = {
    "SKINDOC_ARGON2_TIME_COST": "1",
    "SKINDOC_ARGON2_MEMORY_KIB": "8",
    "SKINDOC_ARGON2_PARALLELISM": "1",
    "SKINDOC_REGISTRATION_MAX_PER_ADDRESS": "1000000",
}
SKINDOC = (sys.executable, "-m", "web.cli")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """The status `url` answers with, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


@dataclass
class LiveServer:
    """One process answering HTTP on 127.0.0.1:port (for a worker: its health endpoint)."""

    process: subprocess.Popen
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def ready(self) -> bool:
        return http_status(f"{self.url}/readyz") == 200

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def start_process(
    argv: Sequence[str],
    env: Mapping[str, str],
    log_path: Path,
    port: int,
    *,
    ready_timeout: float | None = 90.0,
    cwd: Path | None = None,
) -> LiveServer:
    """Starts `argv` with `env` over the inherited environment, its output appended to `log_path`, and
    waits until its /readyz answers 200 (ready_timeout None: returns at once)."""
    with open(log_path, "ab") as log:
        process = subprocess.Popen(list(argv), env={**os.environ, **env}, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    server = LiveServer(process, port, log_path)
    if ready_timeout is None:
        return server
    shown = " ".join(str(arg) for arg in argv[1:])
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{shown} exited with {process.returncode}; log: {log_path.read_text()[-3000:]}")
        if server.ready():
            return server
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"{shown} not ready in {ready_timeout}s; log: {log_path.read_text()[-3000:]}")


def start_server(
    env: Mapping[str, str],
    log_path: Path,
    *,
    port: int | None = None,
    ready_timeout: float = 90.0,
    cwd: Path | None = None,
) -> LiveServer:
    """`skindoc serve` with the given SKINDOC_* settings, once /readyz says ready."""
    port = port or free_port()
    # Dev mode unless the caller says otherwise: a test server given a superuser's URL may serve with it.
    full_env = {"SKINDOC_DEV_MODE": "true", **env, "SKINDOC_HOST": "127.0.0.1", "SKINDOC_PORT": str(port)}
    return start_process([*SKINDOC, "serve"], full_env, log_path, port, ready_timeout=ready_timeout, cwd=cwd)


def production_env(settings, runtime_database_url: str) -> dict[str, str]:
    """SKINDOC_* settings to serve a test's database and Redis as production does: the test's superuser
    (settings.database_url) owns and migrates, the server connects as a runtime role."""
    return {
        "SKINDOC_DATABASE_URL": runtime_database_url,
        "SKINDOC_DATABASE_OWNER_URL": settings.database_url,
        "SKINDOC_DEV_MODE": "false",
        "SKINDOC_REDIS_URL": settings.redis_url,
        "SKINDOC_DATA_DIR": str(settings.data_dir),
        "SKINDOC_SOCKETIO_CHANNEL": settings.chat.socketio_channel,
        "SKINDOC_LOG_FORMAT": "json",
    }


def start_worker(
    env: Mapping[str, str], log_path: Path, *, ready_timeout: float | None = None, cwd: Path | None = None
) -> LiveServer:
    """`skindoc worker` with its health endpoint on a free port; it is ready once every batch size is
    compiled, which takes minutes on a small machine, so by default this does not wait for it."""
    port = free_port()
    return start_process(
        [*SKINDOC, "worker"],
        {**env, "SKINDOC_WORKER_HEALTH_PORT": str(port)},
        log_path,
        port,
        ready_timeout=ready_timeout,
        cwd=cwd,
    )


# ---- scratch databases ----------------------------------------------------------------------------


async def create_database(admin_url: str, name: str, template: str | None = None) -> str:
    """A new database on the server of `admin_url` (empty, or a copy of `template`); returns its URL."""
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    finally:
        await admin.close()
    return with_database(admin_url, name)


async def drop_database(admin_url: str, name: str) -> None:
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def scratch_database(admin_url: str, prefix: str, template: str | None = None) -> AsyncIterator[str]:
    """A database for one test or run, named `prefix` and a random suffix, dropped afterwards."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    url = await create_database(admin_url, name, template)
    try:
        yield url
    finally:
        await drop_database(admin_url, name)
