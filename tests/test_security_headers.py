"""What every response tells a browser and a scanner, /metrics behind a token, request ids that are
ours, and names that cannot reorder the text around them. Against a real `skindoc serve`."""

from __future__ import annotations

import aiohttp

from tests.test_security_support import bearer, register, serve, signed_in


async def test_api_responses_are_not_cached_or_sniffed_and_name_no_versions(live_server):
    async with aiohttp.ClientSession(live_server.url) as http:
        tokens = await signed_in(http)
        checks = [
            ("GET", "/api/v1/me", bearer(tokens)),
            ("GET", "/api/v1/me", {}),  # a 200 and a 401
            ("GET", "/api/v1/no-such-route", {}),
            ("GET", "/api/v1/openapi.json", {}),
        ]
        for method, path, headers in checks:
            async with http.request(method, path, headers=headers) as response:
                assert response.headers["X-Content-Type-Options"] == "nosniff", path
                assert response.headers["Cache-Control"] == "no-store", path
                assert response.headers["Server"] == "skindoc", path
        for path in ("/", "/healthz", "/static/css/skindoc.css"):
            async with http.get(path) as response:
                assert response.headers["X-Content-Type-Options"] == "nosniff", path
                assert response.headers["Server"] == "skindoc", path
        # Without SKINDOC_METRICS_TOKEN there is no /metrics.
        async with http.get("/metrics") as response:
            assert response.status == 404


async def test_metrics_need_the_configured_token(settings, runtime_database_url, tmp_path):
    server = serve(settings, runtime_database_url, tmp_path, extra={"SKINDOC_METRICS_TOKEN": "a-scrape-secret"})
    try:
        async with aiohttp.ClientSession(server.url) as http:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic a-scrape-secret"}):
                async with http.get("/metrics", headers=headers) as response:
                    assert response.status == 401, headers
                    assert "skindoc_http_requests_total" not in await response.text()
            async with http.get("/metrics", headers={"Authorization": "Bearer a-scrape-secret"}) as response:
                assert response.status == 200
                assert "skindoc_http_requests_total" in await response.text()
    finally:
        server.stop()


async def test_request_ids_are_the_servers_and_the_clients_is_kept_apart(live_server, db):
    async with aiohttp.ClientSession(live_server.url) as http:
        async with http.post(
            "/api/v1/auth/register",
            headers={"X-Request-Id": "cli"},
            json={"email": "claims@example.com", "password": "correct horse battery stapler", "name": "Cl Aim"},
        ) as r:
            assert r.status == 201
            ours, theirs = r.headers["X-Request-Id"], r.headers["X-Client-Request-Id"]
        async with http.get("/api/v1/me", headers={"X-Request-Id": "x" * 65}) as r:
            assert "X-Client-Request-Id" not in r.headers  # too long: dropped, not cut
            problem = await r.json()
            assert problem["request_id"] == r.headers["X-Request-Id"] and len(problem["request_id"]) == 16
    assert theirs == "cli" and ours != "cli" and len(ours) == 16
    assert await db.fetch("SELECT 1 FROM audit_log WHERE request_id = 'cli'") == []
    assert await db.fetchval("SELECT request_id FROM audit_log WHERE action = 'auth.register'") == ours


async def test_names_with_bidi_controls_are_refused(live_server, db):
    async with aiohttp.ClientSession(live_server.url) as http:
        for name in ("Dr. \u202eevil", "Sam\u2066 Doe", "Al\u200fi", "Bo\u061cb"):
            async with http.post(
                "/api/v1/auth/register",
                json={"email": "bidi@example.com", "password": "correct horse battery stapler", "name": name},
            ) as r:
                problem = await r.json()
                assert r.status == 422 and problem["field"] == "name", name
                assert "bidirectional" in problem["detail"]
        tokens = await signed_in(http)
        async with http.patch("/api/v1/me", json={"name": "Rename\u202d"}, headers=bearer(tokens)) as r:
            assert r.status == 422
        # Scripts written right to left are names like any other.
        user = await register(http, name="\u05d3\u05e0\u05d4 \u05dc\u05d5\u05d9")
        assert user["name"] == "\u05d3\u05e0\u05d4 \u05dc\u05d5\u05d9"
    assert await db.fetchval("SELECT count(*) FROM users WHERE email = 'bidi@example.com'") == 0
