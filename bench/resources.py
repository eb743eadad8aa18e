"""What the measured processes use: CPU seconds and resident memory from /proc, the PostgreSQL backends and
Redis server behind a run, what the database's backends are waiting on, the machine's load."""

from __future__ import annotations

import asyncio
import os
import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def raise_open_file_limit(wanted: int) -> int:
    """Lifts the soft limit on open files towards `wanted` (capped by the hard limit); returns the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far, all its threads."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as handle:
        return int(handle.read().split()[1]) * PAGE_BYTES


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} (1 min), {five:.2f} (5 min)"


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
        rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", name)
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
                       WHERE datname = $1 AND pid <> pg_backend_pid()""",
                    name,
                )
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
