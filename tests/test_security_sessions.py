"""Sessions end everywhere at once: logout, refresh-token theft, a password change, a disabled account.

Two web nodes share PostgreSQL, Redis and the Socket.IO channel; the session is signed in on one
and its socket is open on the other.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from tests.test_auth_accounts import PASSWORD, login, register
from tests.test_chat_support import Events, User, call, chat_settings, connect, start_node


def _user(tokens: dict) -> User:
    return User(tokens["user"]["id"], tokens["user"]["role"], tokens["access_token"])


async def _closed_within(sock, events: Events, seconds: float) -> dict:
    """The session:revoked the socket got, after checking that it arrived and closed the socket in time."""
    started = time.monotonic()
    revoked = await events.wait_for("session:revoked", timeout=seconds)
    while sock.connected and time.monotonic() - started < seconds:
        await asyncio.sleep(0.02)
    assert not sock.connected, "the socket outlived its session"
    return revoked


@pytest.fixture
async def two_nodes(settings, aiohttp_client):
    shared = chat_settings(settings)
    return await start_node(aiohttp_client, shared), await start_node(aiohttp_client, shared)


async def test_logout_closes_the_sessions_socket_on_another_node_within_a_second(two_nodes):
    node_a, node_b = two_nodes
    await register(node_a.client, "leaving@example.com")
    session = await login(node_a.client, "leaving@example.com")
    other = await login(node_a.client, "leaving@example.com")  # a second sign-in, say on a phone
    sock, events = await connect(node_b, _user(session))
    other_sock, other_events = await connect(node_b, _user(other))
    try:
        assert (await call(sock, "presence:set", {"availability": "away"}))["error"]["code"] == "forbidden_role"
        response = await node_a.client.post(
            "/api/v1/auth/logout",
            json={"refresh_token": session["refresh_token"]},
            headers={"Authorization": f"Bearer {session['access_token']}"},
        )
        assert response.status == 204
        assert (await _closed_within(sock, events, 1.0)) == {"reason": "logout"}
        for node in two_nodes:
            me = await node.client.get("/api/v1/me", headers={"Authorization": f"Bearer {session['access_token']}"})
            assert me.status == 401 and (await me.json())["code"] == "invalid_token"
        # The other sign-in is another session: untouched.
        assert other_sock.connected and other_events.of("session:revoked") == []
    finally:
        await other_sock.disconnect()


async def test_a_revoked_session_cannot_reconnect(two_nodes):
    from tests.test_chat_support import connect_refusal

    node_a, node_b = two_nodes
    await register(node_a.client, "again@example.com")
    session = await login(node_a.client, "again@example.com")
    await node_a.client.post(
        "/api/v1/auth/logout",
        json={"refresh_token": session["refresh_token"]},
        headers={"Authorization": f"Bearer {session['access_token']}"},
    )
    refusal = await connect_refusal(node_b, {"token": session["access_token"]})
    assert refusal["data"]["code"] == "token_invalid"


async def test_refresh_token_theft_closes_the_stolen_sessions_sockets(two_nodes):
    node_a, node_b = two_nodes
    await register(node_a.client, "victim@example.com")
    session = await login(node_a.client, "victim@example.com")
    sock, events = await connect(node_b, _user(session))
    rotated = await (
        await node_a.client.post("/api/v1/auth/refresh", json={"refresh_token": session["refresh_token"]})
    ).json()
    await node_a.client.post("/api/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    # The first token again, after its successor was used: someone holds a copy.
    reuse = await node_b.client.post("/api/v1/auth/refresh", json={"refresh_token": session["refresh_token"]})
    assert (await reuse.json())["code"] == "refresh_token_reused"
    assert (await _closed_within(sock, events, 1.0)) == {"reason": "reuse_detected"}
    me = await node_a.client.get("/api/v1/me", headers={"Authorization": f"Bearer {rotated['access_token']}"})
    assert me.status == 401


async def test_a_password_change_closes_the_other_sessions_and_keeps_this_one(two_nodes):
    node_a, node_b = two_nodes
    await register(node_a.client, "careful@example.com")
    here = await login(node_a.client, "careful@example.com")
    elsewhere = await login(node_a.client, "careful@example.com")
    here_sock, here_events = await connect(node_b, _user(here))
    there_sock, there_events = await connect(node_b, _user(elsewhere))
    try:
        response = await node_a.client.patch(
            "/api/v1/me",
            headers={"Authorization": f"Bearer {here['access_token']}"},
            json={"current_password": PASSWORD, "new_password": "a completely new passphrase"},
        )
        assert response.status == 200
        assert (await _closed_within(there_sock, there_events, 1.0)) == {"reason": "password_change"}
        await asyncio.sleep(0.2)
        assert here_sock.connected and here_events.of("session:revoked") == []
        me = await node_b.client.get("/api/v1/me", headers={"Authorization": f"Bearer {here['access_token']}"})
        assert me.status == 200
    finally:
        await here_sock.disconnect()


async def test_the_sweep_closes_sockets_whose_revocation_signal_was_lost(settings, aiohttp_client, db):
    """No signal at all (revoked, or the account disabled, straight in the database): the sweep finds them."""
    node = await start_node(aiohttp_client, chat_settings(settings, revoked_session_sweep_s=1))
    await register(node.client, "swept@example.com")
    await register(node.client, "disabled@example.com")
    swept = await login(node.client, "swept@example.com")
    disabled = await login(node.client, "disabled@example.com")
    swept_sock, swept_events = await connect(node, _user(swept))
    disabled_sock, disabled_events = await connect(node, _user(disabled))
    await db.execute(
        "UPDATE refresh_families f SET revoked_at = now() FROM users u "
        "WHERE u.id = f.user_id AND u.email = 'swept@example.com'"
    )
    await db.execute("UPDATE users SET status = 'disabled' WHERE email = 'disabled@example.com'")
    await _closed_within(swept_sock, swept_events, 3.0)
    await _closed_within(disabled_sock, disabled_events, 3.0)


async def test_two_tabs_refreshing_at_once_both_stay_signed_in(client, db):
    await register(client, "tabs@example.com", name="Two Tabs")
    session = await login(client, "tabs@example.com")
    body = {"refresh_token": session["refresh_token"]}
    first, second = await asyncio.gather(
        client.post("/api/v1/auth/refresh", json=body), client.post("/api/v1/auth/refresh", json=body)
    )
    assert (first.status, second.status) == (200, 200)
    first, second = await first.json(), await second.json()
    # The same successor for both: whichever tab refreshes next moves the session on.
    assert first["refresh_token"] == second["refresh_token"]
    assert await db.fetchval("SELECT count(*) FROM refresh_families WHERE revoked_at IS NOT NULL") == 0
    for tokens in (first, second):
        assert (
            await client.get("/api/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
        ).status == 200
    onward = await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert onward.status == 200
    # Now the original token's successor is spent: presenting the original is theft, grace or not.
    late = await client.post("/api/v1/auth/refresh", json=body)
    assert (await late.json())["code"] == "refresh_token_reused"


async def test_the_grace_window_ends(aiohttp_client, settings):
    from web.app import create_app

    client = await aiohttp_client(create_app(replace(settings, auth=replace(settings.auth, refresh_grace_s=1))))
    await register(client, "slow@example.com", name="Slow Tab")
    session = await login(client, "slow@example.com")
    body = {"refresh_token": session["refresh_token"]}
    assert (await client.post("/api/v1/auth/refresh", json=body)).status == 200
    await asyncio.sleep(1.5)
    late = await client.post("/api/v1/auth/refresh", json=body)
    assert (await late.json())["code"] == "refresh_token_reused"


async def test_an_identity_provider_relink_closes_the_squatters_socket(aiohttp_client, settings, aiohttp_server):
    """Someone registered the address first (account pre-hijacking); its owner signs in through the provider:
    the squatter's access token and socket die at once, not when the token expires."""
    from tests.test_auth_oidc import CLIENT_ID, LocalIssuer

    issuer = LocalIssuer()
    issuer.url = str((await aiohttp_server(issuer.app(), host="127.0.0.1")).make_url("")).rstrip("/")
    auth = replace(settings.auth, oidc_issuer=issuer.url, oidc_client_id=CLIENT_ID)
    node = await start_node(aiohttp_client, chat_settings(replace(settings, auth=auth)))
    await register(node.client, "olivia@example.com")
    squatter = await login(node.client, "olivia@example.com")
    sock, events = await connect(node, _user(squatter))
    response = await node.client.post(
        "/api/v1/auth/oidc", json={"id_token": issuer.id_token(), "nonce": "nonce-from-the-auth-request"}
    )
    assert response.status == 200, await response.text()
    assert (await _closed_within(sock, events, 1.0)) == {"reason": "oidc_link"}
    me = await node.client.get("/api/v1/me", headers={"Authorization": f"Bearer {squatter['access_token']}"})
    assert me.status == 401
