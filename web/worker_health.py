"""The `skindoc worker` process's own health endpoint, so an orchestrator can check each worker.

/healthz: the process answers. /readyz: 200 once every batch size is compiled and the work
loop went through within the last few heartbeats, 503 (with the reason) while it compiles or
while PostgreSQL or Redis is failing; it turns 200 again by itself when they are back.
"""

from __future__ import annotations

from aiohttp import web

from triage.runner import WorkerSupervisor


def create_health_app(supervisor: WorkerSupervisor, stale_s: float) -> web.Application:
    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        status = supervisor.status
        if status is None:
            return web.json_response({"status": "not_ready", "reason": "loading the model"}, status=503)
        body = {
            "status": "ready" if status.ready(stale_s) else "not_ready",
            "restarts": supervisor.restarts,
            **status.as_dict(stale_s),
        }
        return web.json_response(body, status=200 if status.ready(stale_s) else 503)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def start_health_server(supervisor: WorkerSupervisor, stale_s: float, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(create_health_app(supervisor, stale_s), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError:
        await runner.cleanup()
        raise
    return runner
