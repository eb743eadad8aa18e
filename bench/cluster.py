"""The system under test as processes on 127.0.0.1: `skindoc serve` nodes and `skindoc worker`s sharing a
scratch database, a Redis database and a pub/sub channel; the bare relay; a folder for their logs.

Processes are started through tests/live_server.py, as the tests start them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.live_server import (
    CHEAP_ACCOUNTS_ENV,
    SKINDOC,
    LiveServer,
    free_port,
    start_process,
    start_server,
    start_worker,
)

BENCH = Path(__file__).resolve().parent
# The source tree the servers run from: this checkout, or (SKINDOC_BENCH_TREE) e.g. an export of
# one commit, so that colleagues' unfinished edits in the checkout do not end up in the figures.
SERVER_TREE = Path(os.environ.get("SKINDOC_BENCH_TREE") or BENCH.parent)
DEFAULT_PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/5"
NODE_READY_S = 120.0
# A worker loads the model and compiles every batch size before it says ready.
WORKER_READY_S = 180.0


@dataclass
class Cluster:
    """`skindoc serve` nodes (and workers) sharing a scratch database, a Redis database and a pub/sub channel."""

    database_url: str
    redis_url: str
    workdir: Path
    nodes: list[LiveServer] = field(default_factory=list)
    workers: list[LiveServer] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)
    channel: str = field(default_factory=lambda: f"skindoc-bench-{uuid.uuid4().hex[:12]}")

    def env(self) -> dict[str, str]:
        return {
            **CHEAP_ACCOUNTS_ENV,
            "SKINDOC_DATABASE_URL": self.database_url,
            "SKINDOC_REDIS_URL": self.redis_url,
            "SKINDOC_SOCKETIO_CHANNEL": self.channel,
            "SKINDOC_DATA_DIR": str(self.workdir / "var"),
            "SKINDOC_LOG_LEVEL": "WARNING",
            "SKINDOC_LOG_FORMAT": "text",
            # The scratch database's owner is the admin URL's superuser: a bench is a development machine.
            "SKINDOC_DEV_MODE": "true",
            **self.extra_env,
        }

    async def start(self, count: int) -> None:
        # One after the other: the first creates the shared signing key and applies the migrations.
        for _ in range(count):
            log_path = self.workdir / f"node{len(self.nodes)}.log"
            self.nodes.append(
                await asyncio.to_thread(start_server, self.env(), log_path, ready_timeout=NODE_READY_S, cwd=SERVER_TREE)
            )

    async def start_worker(self, env: Mapping[str, str] | None = None) -> LiveServer:
        """A `skindoc worker`, once it is ready (`env` adds to the cluster's settings)."""
        log_path = self.workdir / f"worker{len(self.workers)}.log"
        worker = await asyncio.to_thread(
            start_worker, {**self.env(), **(env or {})}, log_path, ready_timeout=WORKER_READY_S, cwd=SERVER_TREE
        )
        self.workers.append(worker)
        return worker

    def stop(self) -> None:
        for process in [*self.workers, *self.nodes]:
            process.stop()

    def cli(self, args: Sequence[str], stdin: str | None = None) -> str:
        """Runs `skindoc …` against this cluster's database (e.g. `admin create`)."""
        result = subprocess.run(
            [*SKINDOC, *args],
            cwd=SERVER_TREE,
            env={**os.environ, **self.env()},
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"skindoc {' '.join(args)} failed: {result.stderr[-2000:]}")
        return result.stdout


@contextlib.asynccontextmanager
async def bare_relay(folder: Path) -> AsyncIterator[LiveServer]:
    """bench/bare_relay.py on a free port, the yardstick for the chat benchmarks."""
    port = free_port()
    node = await asyncio.to_thread(
        start_process,
        [sys.executable, str(BENCH / "bare_relay.py"), "--port", str(port)],
        {},
        folder / "bare.log",
        port,
        ready_timeout=NODE_READY_S,
        cwd=SERVER_TREE,
    )
    try:
        yield node
    finally:
        node.stop()


@contextlib.contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    """A temporary folder for the servers' data and logs; kept (and named) when SKINDOC_BENCH_KEEP_LOGS is set."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        if os.environ.get("SKINDOC_BENCH_KEEP_LOGS"):
            print(f"  server logs kept in {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def server_tree_commit() -> str:
    """Which code the servers run: the tree's commit (an export records it in a COMMIT file)."""
    marker = SERVER_TREE / "COMMIT"
    if marker.exists():
        return f"{SERVER_TREE} at {marker.read_text().strip()}"
    result = subprocess.run(
        ["git", "-C", str(SERVER_TREE), "describe", "--always", "--dirty"], capture_output=True, text=True, check=False
    )
    return f"{SERVER_TREE} at {result.stdout.strip() or 'unknown commit'}"
