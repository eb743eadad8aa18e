"""The triage worker: reads photo jobs from the stream, scores them in batches, writes, acknowledges, notifies.

A batch is whatever arrives within `batch_wait_ms` of its first job, up to `max_batch`. The
worker compiles every batch size the classifier serves before it reads its first job, so no
photo ever waits on a compilation. Jobs left unacknowledged by a dead worker are claimed
after `claim_idle_ms`; the idempotent write makes their second run change nothing.

It never gives up: a turn that fails (PostgreSQL or Redis down, the stream's group lost with
Redis's data) is retried after a capped, jittered backoff, logged once when the fault starts
and once when work resumes (`worker_faults`); after any fault the reconciler re-queues photos whose job
was lost.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import secrets
import socket
import time
import uuid
from collections.abc import Sequence
from typing import Protocol

import asyncpg
import redis.asyncio as redis

from store.outages import Backoff, outage_kind
from triage import heartbeat, jobs, reconcile, scoring
from triage.config import TriageConfig
from triage.policy import ConsultationTriage
from triage.store import photos as photo_store
from triage.store import saliency as saliency_store
from triage.store import scores as score_store
from triage.worker_faults import FaultLog

log = logging.getLogger(__name__)

IDLE_BLOCK_MS = 1000
# Consumers that hold no job and have not read for this long are removed from the group.
DEPARTED_CONSUMER_IDLE_MS = 300_000
RETRY_BASE_SECONDS = 0.2
# Saliency overlays (Grad-CAM, tens of ms each on a CPU) are drawn only when no job waits, one at a
# time, so they never delay a score; they are found in the database, so none is lost with a worker.
SALIENCY_PER_TURN = 1


class QueueNotifier(Protocol):
    """Tells every node's doctor consoles that the queue changed (chat's write-only notifier)."""

    async def queue_changed(self, reason: str, consultation_id: uuid.UUID) -> None: ...


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class TriageWorker:
    def __init__(
        self,
        pool: asyncpg.Pool,
        client: redis.Redis,
        classifier: scoring.Classifier,
        config: TriageConfig,
        *,
        on_scored: score_store.OnScored,
        notifier: QueueNotifier | None,
        consumer: str | None = None,
    ) -> None:
        self.pool = pool
        self.redis = client
        self.classifier = classifier
        self.config = config
        self.on_scored = on_scored
        self.notifier = notifier
        self.consumer = consumer or consumer_name()
        # Photos per model call, for the benchmark and the logs.
        self.batch_histogram: collections.Counter[int] = collections.Counter()
        self.scored = 0
        # Photos whose overlay failed here: not retried by this process, so a bad one cannot spin the loop.
        self._unexplainable: set[uuid.UUID] = set()
        self.status = heartbeat.WorkerStatus(self.consumer, classifier.version, tuple(classifier.batch_sizes))
        self._faults = FaultLog(self.consumer, self.status)
        # Set after a fault: the group may need creating again, the stream may have lost jobs, and
        # this consumer's own delivered jobs are taken up again before new ones.
        self._group_ready = False
        self._next_reconcile = 0.0
        self._retry_own_jobs = False

    async def warm_up(self) -> None:
        """Compiles every batch size, so that no photo ever waits on a compilation."""
        started = time.perf_counter()
        await asyncio.to_thread(self.classifier.warmup)
        self.status.compiled = True
        log.info(
            "triage worker compiled",
            extra={
                "consumer": self.consumer,
                "model_version": self.classifier.version,
                "batch_sizes": list(self.classifier.batch_sizes),
                "warmup_seconds": round(time.perf_counter() - started, 2),
            },
        )

    async def start(self) -> None:
        """Compiles, joins the consumer group and re-queues lost jobs: then it is ready."""
        await self.warm_up()
        await self._prepare_stream()
        self.status.last_ok_at = time.time()
        log.info("triage worker ready", extra={"consumer": self.consumer})

    async def _prepare_stream(self) -> None:
        await jobs.ensure_group(self.redis, self.config.stream, self.config.group)
        self._group_ready = True
        await self.reconcile()

    async def run(self) -> None:
        """Compiles, then works until cancelled, publishing heartbeats all along; no error is fatal.

        Two batches overlap: while one batch's results are written (database and Redis round trips),
        the next is already read and scored. Writes stay one at a time and in order.
        """
        beating = asyncio.create_task(self._beat_forever(), name="triage-heartbeat")
        try:
            await self.warm_up()
            await self._work_forever()
        finally:
            beating.cancel()
            await asyncio.gather(beating, return_exceptions=True)
            with contextlib.suppress(Exception):
                await heartbeat.withdraw(self.redis, self.config.stream, self.consumer)

    async def _work_forever(self) -> None:
        backoff = Backoff(RETRY_BASE_SECONDS, self.config.retry_max_s)
        saliency_backlog = self.config.saliency
        writing: asyncio.Task | None = None
        try:
            while True:
                try:
                    if not self._group_ready:
                        await self._prepare_stream()
                    elif time.monotonic() >= self._next_reconcile:
                        await self.reconcile()
                    # While overlays are owed, only peek at the stream: a new job must not wait behind them.
                    batch = await self.take_batch(block_ms=1 if saliency_backlog else IDLE_BLOCK_MS)
                    if batch:
                        results = await self.score(batch)
                        if writing is not None:
                            await writing
                        writing = asyncio.create_task(self.commit(batch, results))
                        saliency_backlog = self.config.saliency
                    else:
                        if writing is not None:
                            await writing
                            writing = None
                        if self.config.saliency:
                            saliency_backlog = await self.compute_missing_saliency(SALIENCY_PER_TURN) > 0
                    self._faults.turn_went_through()
                    backoff.reset()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if writing is not None:
                        await asyncio.gather(writing, return_exceptions=True)
                        writing = None
                    self._turn_failed(exc)
                    await asyncio.sleep(backoff.next_delay())
        finally:
            if writing is not None:
                writing.cancel()
                await asyncio.gather(writing, return_exceptions=True)

    def _turn_failed(self, exc: Exception) -> None:
        """Reports the fault and plans the recovery."""
        missing_group = jobs.is_missing_group(exc)
        self._faults.turn_failed(exc, missing_group=missing_group)
        # Whatever fault it was, Redis may have lost jobs and this consumer holds some it never finished.
        self._group_ready = self._group_ready and not missing_group
        self._next_reconcile = 0.0
        self._retry_own_jobs = True

    async def reconcile(self) -> int:
        """Re-queues photos pending without a job (PostgreSQL is the truth); forgets departed consumers."""
        self._next_reconcile = time.monotonic() + self.config.reconcile_s
        await jobs.forget_departed_consumers(
            self.redis, self.config.stream, self.config.group, idle_ms=DEPARTED_CONSUMER_IDLE_MS
        )
        return await reconcile.requeue_lost_photos(
            self.pool, self.redis, self.config.stream, grace_s=self.config.reconcile_grace_s
        )

    async def _beat_forever(self) -> None:
        stale_s = self.config.heartbeat_stale_s
        while True:
            try:
                await heartbeat.publish(self.redis, self.config.stream, self.status, stale_s)
            except Exception as exc:
                # The work loop reports the fault; a missed beat is what the web nodes should see.
                log.debug("heartbeat not published", extra={"error": f"{type(exc).__name__}: {exc}"})
            await asyncio.sleep(self.config.heartbeat_s)

    async def run_once(self, *, block_ms: int) -> int:
        """One batch, start to finish: stale jobs first, else new ones; returns how many jobs it handled."""
        batch = await self.take_batch(block_ms=block_ms)
        if batch:
            await self.process(batch)
        return len(batch)

    async def take_batch(self, *, block_ms: int) -> list[jobs.Job]:
        cfg = self.config
        if self._retry_own_jobs:
            # Once, right after a fault: later, its pending jobs are the batch being written.
            self._retry_own_jobs = False
            batch = await jobs.read_own_pending(self.redis, cfg.stream, cfg.group, self.consumer, count=cfg.max_batch)
            if batch:
                return batch
        batch = await jobs.claim_stale_jobs(
            self.redis, cfg.stream, cfg.group, self.consumer, min_idle_ms=cfg.claim_idle_ms, count=cfg.max_batch
        )
        if batch:
            log.info("claimed stale triage jobs", extra={"count": len(batch), "consumer": self.consumer})
            return batch
        batch = await jobs.read_new_jobs(
            self.redis, cfg.stream, cfg.group, self.consumer, count=cfg.max_batch, block_ms=block_ms
        )
        if not batch:
            return batch
        # Wait a moment for more: one model call on many photos is far cheaper than many calls on one.
        deadline = time.monotonic() + cfg.batch_wait_ms / 1000
        while len(batch) < cfg.max_batch:
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0:
                break
            batch += await jobs.read_new_jobs(
                self.redis,
                cfg.stream,
                cfg.group,
                self.consumer,
                count=cfg.max_batch - len(batch),
                block_ms=remaining_ms,
            )
        return batch

    async def process(self, batch: Sequence[jobs.Job]) -> None:
        """Scores a batch, writes it, then acknowledges it; a crash before the ack leaves it to be claimed."""
        await self.commit(batch, await self.score(batch))

    async def score(self, batch: Sequence[jobs.Job]) -> list[score_store.PhotoResult]:
        """The model's result, or the reason for failing, for each photo of the batch still to score."""
        started = time.perf_counter()
        to_score, failures = await self._load(batch)
        loaded = time.perf_counter()
        results = failures + await scoring.predict_photos(self.classifier, to_score)
        log.debug(
            "triage batch scored",
            extra={
                "jobs": len(batch),
                "load_ms": round((loaded - started) * 1000),
                "model_ms": round((time.perf_counter() - loaded) * 1000),
            },
        )
        return results

    async def commit(self, batch: Sequence[jobs.Job], results: Sequence[score_store.PhotoResult]) -> None:
        """Writes the results, acknowledges the jobs, then tells the consoles."""
        started = time.perf_counter()
        changed = await scoring.write_results(self.pool, self.classifier, results, self.on_scored)
        await jobs.acknowledge(self.redis, self.config.stream, self.config.group, [job.entry_id for job in batch])
        log.debug(
            "triage batch written",
            extra={"jobs": len(batch), "write_ms": round((time.perf_counter() - started) * 1000)},
        )
        for result in results:
            if result.failure is None:
                self.batch_histogram[result.batch_size] += 1
                self.scored += 1
                self.status.scored += 1
        await self._notify(changed, {r.consultation_id for r in results if r.failure is not None})
        if changed:
            await self._queue_photos_behind([summary.consultation_id for summary in changed])

    async def _queue_photos_behind(self, consultation_ids: Sequence[uuid.UUID]) -> None:
        """A consultation is summarised over its photos' scores from one model version: photos scored
        only by an earlier version (before this worker's model was deployed) are queued for this one."""
        async with self.pool.acquire() as conn:
            behind = await photo_store.photos_behind_version(conn, consultation_ids, self.classifier.version)
        if behind:
            await jobs.enqueue_photo_jobs(
                self.redis, self.config.stream, [(row["id"], row["consultation_id"]) for row in behind]
            )

    async def compute_missing_saliency(self, limit: int) -> int:
        """Draws overlays for scored photos that lack one; returns how many it tried."""
        async with self.pool.acquire() as conn:
            rows = await saliency_store.photos_missing_saliency(
                conn, self.classifier.version, limit, skip=list(self._unexplainable)
            )
        photos = [scoring.PhotoToScore(r["id"], r["consultation_id"], r["image"]) for r in rows]
        self._unexplainable.update(await scoring.store_saliency(self.pool, self.classifier, photos))
        return len(photos)

    async def _load(
        self, batch: Sequence[jobs.Job]
    ) -> tuple[list[scoring.PhotoToScore], list[score_store.PhotoResult]]:
        """The photos to score now, and the failures decided without the model (too many attempts)."""
        async with self.pool.acquire() as conn:
            rows = await score_store.claim_photos_for_scoring_txn(
                conn, [job.photo_id for job in batch], self.classifier.version
            )
        to_score, failures, seen = [], [], set()
        for row in rows:
            if row["already_scored"] or row["missing"] or row["id"] in seen:
                continue
            seen.add(row["id"])
            if row["attempts"] > self.config.max_attempts:
                failures.append(
                    score_store.PhotoResult(
                        row["id"],
                        row["consultation_id"],
                        self.classifier.version,
                        failure=f"gave up after {self.config.max_attempts} attempts",
                    )
                )
            else:
                to_score.append(scoring.PhotoToScore(row["id"], row["consultation_id"], row["image"]))
        return to_score, failures

    async def _notify(self, changed: Sequence[ConsultationTriage], failed_consultations: set[uuid.UUID]) -> None:
        if self.notifier is None:
            return
        events = [("scored", s.consultation_id) for s in changed]
        events += [("triage_failed", c) for c in failed_consultations]
        for reason, consultation_id in events:
            try:
                await self.notifier.queue_changed(reason, consultation_id)
            except Exception as exc:
                # The score is committed; consoles catch up on their next snapshot.
                if outage_kind(exc) is None:
                    log.exception("queue notification failed", extra={"consultation_id": str(consultation_id)})
