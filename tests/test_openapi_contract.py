"""The OpenAPI document describes the live API: schemathesis finds no 5xx and no response that breaks it."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from web.openapi import build_document

SCHEMATHESIS_SECONDS = 60


def _post_json(url: str, payload: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_document_merges_every_domain_and_is_valid_31():
    document = build_document()
    assert document["openapi"] == "3.1.0"
    assert "/api/v1/auth/login" in document["paths"]
    for path, operations in document["paths"].items():
        assert path.startswith("/"), path
        for method, operation in operations.items():
            assert "responses" in operation, f"{method.upper()} {path} documents no responses"


async def test_served_document_is_the_merged_one(client):
    response = await client.get("/api/v1/openapi.json")
    assert response.status == 200
    assert await response.json() == build_document()


def test_schemathesis_finds_no_server_error_or_schema_violation(live_server, tmp_path):
    account = {"email": "fuzz@example.org", "password": "an unusual passphrase 42", "name": "Fuzz"}
    _post_json(f"{live_server.url}/api/v1/auth/register", {**account, "role": "patient"})
    token = _post_json(
        f"{live_server.url}/api/v1/auth/login", {"email": account["email"], "password": account["password"]}
    )["access_token"]
    st = Path(sys.executable).with_name("st")
    result = subprocess.run(
        [
            str(st),
            "run",
            f"{live_server.url}/api/v1/openapi.json",
            "--checks",
            "not_a_server_error,response_schema_conformance,content_type_conformance",
            "--header",
            f"Authorization: Bearer {token}",
            "--max-time",
            str(SCHEMATHESIS_SECONDS),
            "--workers",
            "1",
            "--suppress-health-check",
            "all",
            "--warnings",
            "off",
        ],
        capture_output=True,
        text=True,
        timeout=SCHEMATHESIS_SECONDS * 4,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
