"""Running triage as a process: the classifier loaded, the other domains' hooks plugged in, until stopped.

Triage imports no other domain; the composition root hands it `TriageHooks`: what to do in the
scoring transaction, how to reach the doctors' consoles, which consultations are open.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import redis.asyncio as redis

from store.outages import Backoff
from triage import bands, rescore, scoring
from triage.config import TriageConfig
from triage.heartbeat import WorkerStatus
from triage.policy import ConsultationTriage
from triage.store import scores as score_store
from triage.worker import QueueNotifier, TriageWorker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TriageHooks:
    on_scored: score_store.OnScored
    notifier: QueueNotifier | None
    open_consultations: Callable[[asyncpg.Connection], Awaitable[list[uuid.UUID]]]


def load_classifier(model_dir: Path | None, config: TriageConfig) -> scoring.Classifier:
    from jax_models.serving import load_classifier as load

    classifier = load(weights_dir=model_dir, batch_sizes=config.batch_sizes)
    # Refused before it scores anything: bands the database does not hold would fail every write.
    bands.for_thresholds(classifier.thresholds)
    return classifier


class WorkerSupervisor:
    """Runs a triage worker until cancelled, and a fresh one whenever one stops on an error.

    The worker itself retries every store fault; what ends it here is a bug or a failure to load
    the model, so the restarts back off (capped) and each is logged with its traceback.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        client: redis.Redis,
        config: TriageConfig,
        hooks: TriageHooks,
        classifier: scoring.Classifier | None = None,
    ) -> None:
        self._pool = pool
        self._redis = client
        self._config = config
        self._hooks = hooks
        self._classifier = classifier
        self.worker: TriageWorker | None = None
        self.restarts = 0

    @property
    def status(self) -> WorkerStatus | None:
        return self.worker.status if self.worker is not None else None

    async def run(self) -> None:
        backoff = Backoff(1.0, max(self._config.retry_max_s, 1))
        while True:
            try:
                await self._run_one()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                self.restarts += 1
                log.exception("triage worker stopped; starting a fresh one", extra={"restarts": self.restarts})
                await asyncio.sleep(backoff.next_delay())

    async def _run_one(self) -> None:
        if self._classifier is None:  # loading runs off the event loop
            self._classifier = await asyncio.to_thread(load_classifier, self._config.model_dir, self._config)
        self.worker = TriageWorker(
            self._pool,
            self._redis,
            self._classifier,
            self._config,
            on_scored=self._hooks.on_scored,
            notifier=self._hooks.notifier,
        )
        await self.worker.run()


async def rescore_open(
    pool: asyncpg.Pool, model_dir: Path, config: TriageConfig, hooks: TriageHooks
) -> tuple[scoring.Classifier, list[ConsultationTriage]]:
    """Scores the open consultations' photos with the model in `model_dir`; returns it and what changed."""
    classifier = await asyncio.to_thread(load_classifier, model_dir, config)
    async with pool.acquire() as conn:
        open_ids = await hooks.open_consultations(conn)
    changed = await rescore.rescore_consultations(
        pool, classifier, open_ids, on_scored=hooks.on_scored, notifier=hooks.notifier
    )
    return classifier, changed
