"""The JavaScript client library (clients/js) against a live server: node's own test runner drives it."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from pathlib import Path

import pytest

from auth import AUTH_SERVICE
from auth.audit import AuditContext
from tests.test_chat_support import PASSWORD

CLIENT_DIR = Path(__file__).parent.parent / "clients" / "js"


async def test_js_client_library_against_a_live_server(node):
    node_binary = shutil.which("node")
    if node_binary is None or not (CLIENT_DIR.parent.parent / "node_modules" / "socket.io-client").exists():
        print("\n*** SKIPPED: the JavaScript client tests need node and `npm ci` (make install-test) ***")
        pytest.skip("node or node_modules missing")
    auth = node.app[AUTH_SERVICE]
    # The rival is a second doctor, for the race to take one case.
    roles = {"patient": "patient", "doctor": "doctor", "rival": "doctor"}
    emails = {who: f"js-{who}-{secrets.token_hex(4)}@example.org" for who in roles}
    for who, email in emails.items():
        user = await auth.register(
            email=email, password=PASSWORD, name=f"JS {who}", role=roles[who], ctx=AuditContext(None)
        )
        if roles[who] == "doctor":
            await auth.approve_doctor(user.id, ctx=AuditContext(None))
    env = {
        **os.environ,
        "SKINDOC_URL": node.url,
        "SKINDOC_PASSWORD": PASSWORD,
        **{f"SKINDOC_{who.upper()}_EMAIL": email for who, email in emails.items()},
    }
    tests = sorted(str(path) for path in (CLIENT_DIR / "test").glob("*.test.js"))
    process = await asyncio.create_subprocess_exec(
        node_binary,
        "--test",
        *tests,
        env=env,
        cwd=CLIENT_DIR,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, output.decode()[-6000:]
    print(output.decode()[-600:])
    assert b"# fail 0" in output and b"# pass 0" not in output
