"""The app's own surface: health, readiness, metrics and problem JSON for errors aiohttp raises itself."""

from __future__ import annotations


async def test_healthz_and_readyz(client):
    response = await client.get("/healthz")
    assert response.status == 200
    response = await client.get("/readyz")
    assert response.status == 200
    body = await response.json()
    # No triage worker runs beside this app: ready for chat, and it says scoring is not.
    assert body["status"] == "degraded" and body["ready_for"] == ["api", "chat"]
    assert body["checks"]["database"] == body["checks"]["redis"] == "ok"
    assert body["checks"]["triage"] == {
        "status": "down",
        "workers": 0,
        "ready_workers": 0,
        "last_heartbeat_age_s": None,
    }


async def test_unknown_path_is_problem_json(client):
    response = await client.get("/no/such/path")
    assert response.status == 404
    assert response.content_type == "application/problem+json"
    body = await response.json()
    assert body["status"] == 404 and body["code"] == "not_found"
    assert body["request_id"] == response.headers["X-Request-Id"]


async def test_wrong_method_is_problem_json(client):
    response = await client.post("/healthz")
    assert response.status == 405
    assert response.content_type == "application/problem+json"
    assert (await response.json())["code"] == "method_not_allowed"
    assert "GET" in response.headers["Allow"]


async def test_metrics_count_requests(aiohttp_client, settings):
    from dataclasses import replace

    from web.app import create_app

    client = await aiohttp_client(create_app(replace(settings, metrics_token="scrape-secret")))
    await client.get("/healthz")
    response = await client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
    assert response.status == 200
    text = await response.text()
    assert 'skindoc_http_requests_total{method="GET",route="/healthz",status="200"}' in text
