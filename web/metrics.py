"""Prometheus metrics at /metrics: request counts and latencies by route, plus whatever domains register."""
from __future__ import annotations

import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

METRICS_REGISTRY = web.AppKey("metrics_registry", CollectorRegistry)


def setup(app: web.Application) -> CollectorRegistry:
    # One registry per app, so two apps in one test process do not collide.
    registry = CollectorRegistry()
    app[METRICS_REGISTRY] = registry
    requests = Counter("skindoc_http_requests_total", "HTTP requests", ["method", "route", "status"],
                       registry=registry)
    latency = Histogram("skindoc_http_request_seconds", "HTTP request latency", ["method", "route"],
                        registry=registry)

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
        response = web.Response(body=generate_latest(registry))
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return response

    app.middlewares.append(count_requests)
    app.router.add_get("/metrics", metrics)
    return registry
