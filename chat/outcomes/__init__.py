"""Outcomes: what each resolved lesion turned out to be, and how the triage model performs on those cases."""

from __future__ import annotations

import logging

import prometheus_client
from aiohttp import web

from chat.outcomes.config import OutcomesConfig
from chat.outcomes.routes import OutcomeRoutes
from chat.outcomes.service import AlertMonitor, OutcomesService
from store.connections import Stores

log = logging.getLogger(__name__)

OUTCOMES_SERVICE = web.AppKey("outcomes_service", OutcomesService)


def setup(
    app: web.Application,
    stores: Stores,
    config: OutcomesConfig,
    max_json_bytes: int,
    registry: prometheus_client.CollectorRegistry | None,
) -> OutcomesService:
    service = OutcomesService(stores, config, AlertMonitor(registry))
    OutcomeRoutes(service, max_json_bytes).register_on(app)
    app[OUTCOMES_SERVICE] = service

    async def first_check(app: web.Application) -> None:
        # So the alert's metric and log line hold from the start, not from someone's first look.
        try:
            await service.check_alert()
        except Exception:
            log.warning("could not check the triage sensitivity alert at start", exc_info=True)

    app.on_startup.append(first_check)
    return service
