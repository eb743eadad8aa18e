"""With no database or Redis URL, `skindoc serve` starts embedded servers in its data folder and keeps data."""
from __future__ import annotations

import json
import os
import urllib.request

from tests.live_server import start_server


def _post_json(url: str, payload: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_embedded_servers_persist_accounts_across_restarts(tmp_path, monkeypatch):
    for name in ("SKINDOC_DATABASE_URL", "SKINDOC_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    env = {"SKINDOC_DATA_DIR": str(tmp_path / "var")}
    account = {"email": "embedded@example.org", "password": "a long and unusual passphrase", "name": "Asha"}

    server = start_server(env, tmp_path / "first.log")
    try:
        status, _ = _post_json(f"{server.url}/api/v1/auth/register", {**account, "role": "patient"})
        assert status == 201
    finally:
        server.stop()

    server = start_server(env, tmp_path / "second.log")
    try:
        status, body = _post_json(f"{server.url}/api/v1/auth/login",
                                  {"email": account["email"], "password": account["password"]})
        assert status == 200, body
        assert body["user"]["email"] == account["email"]
    finally:
        server.stop()
        _stop_embedded_postgres(tmp_path / "var" / "postgres")


def _stop_embedded_postgres(pgdata) -> None:
    """pgserver leaves its server running for the next process; a test cleans up after itself."""
    import pgserver

    pgserver.get_server(pgdata, cleanup_mode="stop").cleanup()
