"""Prometheus metrics at /metrics: request counts and latencies by route, plus whatever domains register.

/metrics is served only when SKINDOC_METRICS_TOKEN is set, and only to requests bearing that token:
route names, volumes and timings tell an outsider how the service is used.
"""

from __future__ import annotations

import hmac
import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

METRICS_REGISTRY = web.AppKey("metrics_registry", CollectorRegistry)


def setup(app: web.Application, token: str | None = None) -> CollectorRegistry:
    # One registry per app, so two apps in one test process do not collide.
    registry = CollectorRegistry()
    app[METRICS_REGISTRY] = registry
    requests = Counter("skindoc_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=registry)
    latency = Histogram("skindoc_http_request_seconds", "HTTP request latency", ["method", "route"], registry=registry)

    @web.middleware
    async def count_requests(request: web.Request, handler):
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            resource = request.match_info.route.resource
            route = resource.canonical if resource is not None else "unmatched"
            requests.labels(request.method, route, str(status)).inc()
            latency.labels(request.method, route).observe(time.perf_counter() - started)

    async def metrics(request: web.Request) -> web.Response:
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), token.encode()):
            raise web.HTTPUnauthorized(headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
        response = web.Response(body=generate_latest(registry))
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return response

    app.middlewares.append(count_requests)
    if token:
        app.router.add_get("/metrics", metrics)
    return registry
