"""Shared plumbing for the chat benchmarks: scratch database, server nodes as subprocesses, accounts, /proc figures.

Everything runs on 127.0.0.1. A run creates its own PostgreSQL database and drops
it at the end, uses its own Redis database number and pub/sub channel, and
creates its accounts through the REST API with random passwords (nothing to keep).
"""
from __future__ import annotations

import asyncio
import contextlib
import math
import os
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg

REPO = Path(__file__).resolve().parents[1]
# The source tree the servers run from: this checkout, or (SKINDOC_BENCH_TREE) e.g. an export of
# one commit, so that colleagues' unfinished edits in the checkout do not end up in the figures.
SERVER_TREE = Path(os.environ.get("SKINDOC_BENCH_TREE") or REPO)
DEFAULT_PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/5"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")

# Passwords are hashed at argon2id's cheapest cost on the benchmark servers: account
# set-up is not what is measured, and thousands of default-cost hashes would take minutes.
CHEAP_ARGON2 = {"SKINDOC_ARGON2_TIME_COST": "1", "SKINDOC_ARGON2_MEMORY_KIB": "8",
                "SKINDOC_ARGON2_PARALLELISM": "1"}


def raise_open_file_limit(wanted: int) -> int:
    """Lifts the soft limit on open files towards `wanted` (capped by the hard limit); returns the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def with_database(url: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


@contextlib.asynccontextmanager
async def scratch_database(admin_url: str, label: str) -> AsyncIterator[str]:
    """A new, empty database for one run (the servers migrate it), dropped afterwards."""
    name = f"skindoc_bench_{label}_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield with_database(admin_url, name)
    finally:
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


# ---- /proc figures --------------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as handle:
        return int(handle.read().split()[1]) * PAGE_BYTES


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuMeter:
    """CPU seconds used by some processes between start() and stop(); processes that vanish count what they had."""
    pids: Sequence[int]
    _start: dict[int, float] = field(default_factory=dict)
    _self_start: float = 0.0
    _wall_start: float = 0.0
    used: dict[int, float] = field(default_factory=dict)
    self_used: float = 0.0
    wall: float = 0.0

    def start(self) -> None:
        self._wall_start = time.monotonic()
        self._self_start = own_cpu_seconds()
        self._start = {pid: _cpu_or_none(pid) or 0.0 for pid in self.pids}

    def stop(self) -> None:
        self.wall = time.monotonic() - self._wall_start
        self.self_used = own_cpu_seconds() - self._self_start
        for pid, before in self._start.items():
            after = _cpu_or_none(pid)
            self.used[pid] = (after - before) if after is not None else 0.0

    def total(self) -> float:
        return sum(self.used.values())

    def percent(self, seconds: float) -> float:
        return 100.0 * seconds / self.wall if self.wall else 0.0


def _cpu_or_none(pid: int) -> float | None:
    try:
        return cpu_seconds(pid)
    except (FileNotFoundError, ProcessLookupError):
        return None


async def postgres_backend_pids(database_url: str) -> list[int]:
    """The PostgreSQL server processes serving one database (the nodes' pools)."""
    conn = await asyncpg.connect(database_url)
    try:
        name = await conn.fetchval("SELECT current_database()")
        rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                                name)
    finally:
        await conn.close()
    return [row["pid"] for row in rows]


async def redis_server_pid(redis_url: str) -> int | None:
    import redis.asyncio as redis_asyncio

    client = redis_asyncio.Redis.from_url(redis_url)
    try:
        info = await client.info("server")
    finally:
        await client.aclose()
    pid = int(info.get("process_id", 0))
    return pid if pid and Path(f"/proc/{pid}").exists() else None


def server_tree_commit() -> str:
    """Which code the servers run: the tree's commit (an export records it in a COMMIT file)."""
    marker = SERVER_TREE / "COMMIT"
    if marker.exists():
        return f"{SERVER_TREE} at {marker.read_text().strip()}"
    result = subprocess.run(["git", "-C", str(SERVER_TREE), "describe", "--always", "--dirty"], capture_output=True,
                            text=True, check=False)
    return f"{SERVER_TREE} at {result.stdout.strip() or 'unknown commit'}"


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} (1 min), {five:.2f} (5 min)"


# ---- server nodes ---------------------------------------------------------------------------------

@dataclass
class Node:
    """One server process on 127.0.0.1."""
    process: subprocess.Popen
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


async def start_process(argv: Sequence[str], env: Mapping[str, str], log_path: Path, port: int,
                        ready_path: str, timeout: float = 120.0) -> Node:
    """Starts a server subprocess and waits until `ready_path` answers 200."""
    node = Node(_spawn(argv, env, log_path), port, log_path)
    process = node.process
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{argv} exited with {process.returncode}; log: {log_path.read_text()[-3000:]}")
            with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.TimeoutError):
                async with session.get(f"{node.url}{ready_path}", timeout=aiohttp.ClientTimeout(total=2)) as r:
                    if r.status == 200:
                        return node
            await asyncio.sleep(0.2)
    node.stop()
    raise RuntimeError(f"{argv} not ready in {timeout}s; log: {log_path.read_text()[-3000:]}")


def _spawn(argv: Sequence[str], env: Mapping[str, str], log_path: Path) -> subprocess.Popen:
    with open(log_path, "ab") as log:
        return subprocess.Popen(list(argv), cwd=SERVER_TREE, env={**os.environ, **env}, stdout=log,
                                stderr=subprocess.STDOUT)


@dataclass
class Cluster:
    """One or more `skindoc serve` nodes sharing a scratch database, a Redis database and a pub/sub channel."""
    database_url: str
    redis_url: str
    workdir: Path
    nodes: list[Node] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)
    channel: str = field(default_factory=lambda: f"skindoc-bench-{uuid.uuid4().hex[:12]}")

    def env(self, port: int) -> dict[str, str]:
        return {**CHEAP_ARGON2,
                "SKINDOC_DATABASE_URL": self.database_url, "SKINDOC_REDIS_URL": self.redis_url,
                "SKINDOC_SOCKETIO_CHANNEL": self.channel, "SKINDOC_DATA_DIR": str(self.workdir / "var"),
                "SKINDOC_HOST": "127.0.0.1", "SKINDOC_PORT": str(port), "SKINDOC_LOG_LEVEL": "WARNING",
                "SKINDOC_LOG_FORMAT": "text",
                # The scratch database's owner is the admin URL's superuser: a bench is a development machine.
                "SKINDOC_DEV_MODE": "true", **self.extra_env}

    async def start(self, count: int) -> None:
        # One after the other: the first creates the shared signing key and applies the migrations.
        for i in range(count):
            port = free_port()
            self.nodes.append(await start_process([sys.executable, "-m", "web.cli", "serve"], self.env(port),
                                                  self.workdir / f"node{i}.log", port, "/readyz"))

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def cli(self, args: Sequence[str], stdin: str | None = None) -> str:
        """Runs `skindoc …` against this cluster's database (e.g. `admin create`)."""
        result = subprocess.run([sys.executable, "-m", "web.cli", *args], cwd=SERVER_TREE, env={**os.environ,
                                **self.env(0)}, input=stdin, capture_output=True, text=True, timeout=300,
                                check=False)
        if result.returncode != 0:
            raise RuntimeError(f"skindoc {' '.join(args)} failed: {result.stderr[-2000:]}")
        return result.stdout


@contextlib.contextmanager
def workdir(prefix: str):
    """A temporary folder for the servers' data and logs; kept (and named) when SKINDOC_BENCH_KEEP_LOGS is set."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        if os.environ.get("SKINDOC_BENCH_KEEP_LOGS"):
            print(f"  server logs kept in {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


# ---- accounts over the REST API -------------------------------------------------------------------

@dataclass
class Account:
    user_id: str
    email: str
    role: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class AccountMaker:
    """Registers and signs in accounts through a node's REST API; doctors are approved by an admin over the API."""

    def __init__(self, cluster: Cluster, session: aiohttp.ClientSession, run_tag: str) -> None:
        self._cluster = cluster
        self._session = session
        self._tag = run_tag
        self._password = secrets.token_urlsafe(18)
        self._admin: Account | None = None
        self._admin_lock = asyncio.Lock()

    def _url(self, i: int, path: str) -> str:
        nodes = self._cluster.nodes
        return f"{nodes[i % len(nodes)].url}{path}"

    async def _post(self, url: str, body: dict, headers: dict | None = None) -> dict:
        async with self._session.post(url, json=body, headers=headers) as response:
            data = await response.json(content_type=None)
            if response.status >= 300:
                raise RuntimeError(f"POST {url} answered {response.status}: {data}")
            return data

    async def make(self, role: str, i: int) -> Account:
        email = f"{role}{i}.{self._tag}@bench.example.org"
        await self._post(self._url(i, "/api/v1/auth/register"),
                         {"email": email, "password": self._password, "name": f"{role} {i}", "role": role})
        tokens = await self._post(self._url(i, "/api/v1/auth/login"), {"email": email, "password": self._password})
        account = Account(tokens["user"]["id"], email, role, tokens["access_token"])
        if role == "doctor":
            await self._post(self._url(i, f"/api/v1/admin/doctors/{account.user_id}/approve"), {},
                             await self._admin_headers())
        return account

    async def make_many(self, role: str, count: int, start: int = 0, concurrency: int = 16) -> list[Account]:
        limit = asyncio.Semaphore(concurrency)

        async def one(i: int) -> Account:
            async with limit:
                return await self.make(role, i)

        return list(await asyncio.gather(*(one(i) for i in range(start, start + count))))

    async def _admin_headers(self) -> dict[str, str]:
        async with self._admin_lock:
            if self._admin is None:
                self._admin = await self._create_admin()
        return self._admin.headers

    async def _create_admin(self) -> Account:
        email = f"admin.{self._tag}@bench.example.org"
        await asyncio.to_thread(self._cluster.cli, ["admin", "create", "--email", email, "--name", "Bench admin",
                                                    "--password-stdin"], self._password + "\n")
        tokens = await self._post(self._url(0, "/api/v1/auth/login"), {"email": email, "password": self._password})
        return Account(tokens["user"]["id"], email, "admin", tokens["access_token"])

    async def open_case(self, patient: Account, i: int) -> str:
        body = {"description": f"bench case {i}", "body_site": "arm",
                "symptoms": {"size_changed": False, "shape_irregular": False, "colour_irregular": True,
                             "diameter_7mm": False, "inflamed": False, "oozing": False,
                             "sensation_changed": False, "duration": "weeks"}}
        return (await self._post(self._url(i, "/api/v1/consultations"), body, patient.headers))["id"]

    async def take_case(self, doctor: Account, case_id: str, i: int) -> None:
        await self._post(self._url(i, f"/api/v1/consultations/{case_id}/take"), {}, doctor.headers)


# ---- figures --------------------------------------------------------------------------------------

def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(h) for h in header]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n{title}")
    for n, row in enumerate(cells):
        print("  " + "  ".join(c.rjust(w) if n and i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if n == 0:
            print("  " + "  ".join("-" * w for w in widths))


def _fmt(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


class PgWaitSampler:
    """Samples what the database's backends are doing (pg_stat_activity) to show where a transaction waits."""

    def __init__(self, database_url: str, interval: float = 0.05) -> None:
        self._url = database_url
        self._interval = interval
        self._task: asyncio.Task | None = None
        self.counts: dict[str, int] = {}
        self.samples = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._sample())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _sample(self) -> None:
        conn = await asyncpg.connect(self._url)
        try:
            name = await conn.fetchval("SELECT current_database()")
            while True:
                rows = await conn.fetch(
                    """SELECT state, wait_event_type, wait_event FROM pg_stat_activity
                       WHERE datname = $1 AND pid <> pg_backend_pid()""", name)
                self.samples += 1
                for row in rows:
                    if row["state"] == "idle":
                        what = "idle (in the pool)"
                    elif row["wait_event_type"] is None:
                        what = f"{row['state']}: on CPU"
                    else:
                        what = f"{row['state']}: {row['wait_event_type']}/{row['wait_event']}"
                    self.counts[what] = self.counts.get(what, 0) + 1
                await asyncio.sleep(self._interval)
        finally:
            await conn.close()

    def summary(self, top: int = 6) -> str:
        """The commonest backend states, as the mean number of backends in each."""
        ranked = sorted(self.counts.items(), key=lambda kv: -kv[1])[:top]
        return "; ".join(f"{what} {count / max(self.samples, 1):.1f}" for what, count in ranked)


def start_py_spy(pid: int, seconds: float, out: Path) -> subprocess.Popen:
    """Samples a node's Python stacks for `seconds` (collapsed stacks, for a flame graph or grep)."""
    return subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid),
                             "--duration", str(max(1, int(seconds))), "--rate", "200", "--format", "raw",
                             "--output", str(out), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def top_frames(collapsed: Path, top: int = 15) -> list[tuple[str, float]]:
    """Share of samples in which each function appears anywhere on the stack (inclusive time)."""
    totals: dict[str, int] = {}
    samples = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        samples += n
        for frame in set(stack.split(";")):
            totals[frame] = totals.get(frame, 0) + n
    ranked = sorted(totals.items(), key=lambda kv: -kv[1])[:top]
    return [(frame, 100.0 * n / max(samples, 1)) for frame, n in ranked]
