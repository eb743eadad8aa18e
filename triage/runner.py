"""Running triage as a process: the classifier loaded, the other domains' hooks plugged in, until stopped.

Triage imports no other domain; the composition root hands it `TriageHooks`: what to do in the
scoring transaction, how to reach the doctors' consoles, which consultations are open.
"""
from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import redis.asyncio as redis

from triage import rescore, scoring, store
from triage.config import TriageConfig
from triage.policy import ConsultationTriage
from triage.worker import QueueNotifier, TriageWorker


@dataclass(frozen=True)
class TriageHooks:
    on_scored: store.OnScored
    notifier: QueueNotifier | None
    open_consultations: Callable[[asyncpg.Connection], Awaitable[list[uuid.UUID]]]


def load_classifier(model_dir: Path | None, config: TriageConfig) -> scoring.Classifier:
    from jax_models.serving import load_classifier as load

    return load(weights_dir=model_dir, batch_sizes=config.batch_sizes)


async def run_worker(pool: asyncpg.Pool, client: redis.Redis, config: TriageConfig, hooks: TriageHooks,
                     classifier: scoring.Classifier | None = None) -> None:
    """Loads the classifier (unless given; loading runs off the event loop), then consumes jobs until cancelled."""
    classifier = classifier or await asyncio.to_thread(load_classifier, config.model_dir, config)
    worker = TriageWorker(pool, client, classifier, config, on_scored=hooks.on_scored, notifier=hooks.notifier)
    await worker.run()


async def rescore_open(pool: asyncpg.Pool, model_dir: Path, config: TriageConfig,
                       hooks: TriageHooks) -> tuple[scoring.Classifier, list[ConsultationTriage]]:
    """Scores the open consultations' photos with the model in `model_dir`; returns it and what changed."""
    classifier = await asyncio.to_thread(load_classifier, model_dir, config)
    async with pool.acquire() as conn:
        open_ids = await hooks.open_consultations(conn)
    changed = await rescore.rescore_consultations(pool, classifier, open_ids, on_scored=hooks.on_scored,
                                                  notifier=hooks.notifier)
    return classifier, changed
