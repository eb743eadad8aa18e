"""Settings from SKINDOC_* environment variables, with safe defaults (see the README's table)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from auth.config import AuthConfig
from chat.config import ChatConfig
from chat.outcomes.config import OutcomesConfig
from store.env import env_bool, env_int
from triage.config import TriageConfig


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    database_url: str | None = None
    # The role that owns the schema: runs the migrations and grants the runtime role (database_url's)
    # what it needs. Unset: database_url's role migrates, and must then own the tables.
    database_owner_url: str | None = None
    # Allows serving as the owner of the audit log (a development machine; embedded mode always may).
    dev_mode: bool = False
    # /metrics answers only requests carrying this bearer token; unset: /metrics is not served.
    metrics_token: str | None = None
    redis_url: str | None = None
    data_dir: Path = Path("var")
    log_level: str = "INFO"
    log_format: str = "json"
    max_request_bytes: int = 16 * 1024 * 1024
    max_json_bytes: int = 64 * 1024
    db_pool_size: int = 10
    redis_max_connections: int = 64
    # `skindoc worker`'s own health endpoint (/healthz, /readyz); port 0 turns it off.
    worker_health_host: str = "127.0.0.1"
    worker_health_port: int = 8081
    auth: AuthConfig = field(default_factory=AuthConfig)
    chat: ChatConfig = field(default_factory=ChatConfig)
    triage: TriageConfig = field(default_factory=TriageConfig)
    outcomes: OutcomesConfig = field(default_factory=OutcomesConfig)
    # Where `npm ci` put the browser packages (an installed package cannot find the checkout's).
    node_modules_dir: Path = Path(__file__).resolve().parent.parent / "node_modules"
    # The JavaScript client library the pages run on (clients/js), likewise outside the Python package.
    client_js_dir: Path = Path(__file__).resolve().parent.parent / "clients" / "js"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            host=env.get("SKINDOC_HOST", cls.host),
            port=env_int(env, "SKINDOC_PORT", cls.port),
            database_url=env.get("SKINDOC_DATABASE_URL") or None,
            database_owner_url=env.get("SKINDOC_DATABASE_OWNER_URL") or None,
            dev_mode=env_bool(env, "SKINDOC_DEV_MODE", cls.dev_mode),
            metrics_token=env.get("SKINDOC_METRICS_TOKEN") or None,
            redis_url=env.get("SKINDOC_REDIS_URL") or None,
            data_dir=Path(env.get("SKINDOC_DATA_DIR", str(cls.data_dir))),
            log_level=env.get("SKINDOC_LOG_LEVEL", cls.log_level).upper(),
            log_format=env.get("SKINDOC_LOG_FORMAT", cls.log_format),
            max_request_bytes=env_int(env, "SKINDOC_MAX_REQUEST_BYTES", cls.max_request_bytes),
            max_json_bytes=env_int(env, "SKINDOC_MAX_JSON_BYTES", cls.max_json_bytes),
            db_pool_size=env_int(env, "SKINDOC_DB_POOL_SIZE", cls.db_pool_size),
            redis_max_connections=env_int(env, "SKINDOC_REDIS_MAX_CONNECTIONS", cls.redis_max_connections),
            worker_health_host=env.get("SKINDOC_WORKER_HEALTH_HOST", cls.worker_health_host),
            worker_health_port=env_int(env, "SKINDOC_WORKER_HEALTH_PORT", cls.worker_health_port),
            auth=AuthConfig.from_env(env),
            chat=ChatConfig.from_env(env),
            triage=TriageConfig.from_env(env),
            outcomes=OutcomesConfig.from_env(env),
            node_modules_dir=Path(env.get("SKINDOC_NODE_MODULES_DIR") or cls.node_modules_dir),
            client_js_dir=Path(env.get("SKINDOC_CLIENT_JS_DIR") or cls.client_js_dir),
        )
