"""Triage settings from SKINDOC_TRIAGE_* (and SKINDOC_INPROCESS_WORKER) environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from store.env import env_bool, env_int
from triage.heartbeat import STALE_AFTER_BEATS


@dataclass(frozen=True)
class TriageConfig:
    # Intake: the body cap covers the whole multipart request, photos and fields together.
    max_upload_bytes: int = 15 * 1024 * 1024
    max_photos_per_consultation: int = 6
    # Decompression-bomb guard, checked from the header before any pixel is decoded: width x height,
    # and the decoded bytes at most this many RGB pixels' worth (4-byte modes get 3/4 of it). At 24
    # megapixels the worst accepted upload peaks at about 180 MB (bench/intake_memory.py).
    max_pixels: int = 24_000_000
    # Low enough for dermoscopy crops (the training images are 171x128).
    min_side: int = 128
    # The job stream and its consumer group (stream keys live in the configured Redis database).
    stream: str = "skindoc:triage:jobs"
    group: str = "triage-workers"
    max_batch: int = 32
    batch_wait_ms: int = 20
    # A job pending this long on a consumer is taken over by another worker (its owner is presumed dead).
    claim_idle_ms: int = 30_000
    max_attempts: int = 3
    # The reconciler re-queues photos pending longer than the grace period with no job in the stream.
    reconcile_s: int = 30
    reconcile_grace_s: int = 10
    # How often a worker publishes its heartbeat (web nodes call it gone after three missed beats).
    heartbeat_s: int = 5
    # Longest pause between retries while PostgreSQL or Redis is failing (backoff grows up to it).
    retry_max_s: int = 10
    # None: the weights shipped in jax_models/weights.
    model_dir: Path | None = None
    saliency: bool = True
    # Run a worker inside `skindoc serve` even when PostgreSQL and Redis are external.
    inprocess_worker: bool = False

    @property
    def heartbeat_stale_s(self) -> float:
        return self.heartbeat_s * STALE_AFTER_BEATS

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        """The batch sizes the classifier compiles: powers of two up to max_batch (and max_batch itself),
        so a batch is padded by less than half and no compiled size goes unused."""
        sizes = {self.max_batch}
        size = 1
        while size < self.max_batch:
            sizes.add(size)
            size *= 2
        return tuple(sorted(sizes))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TriageConfig:
        env = os.environ if env is None else env
        model_dir = env.get("SKINDOC_TRIAGE_MODEL_DIR") or None
        return cls(
            max_upload_bytes=env_int(env, "SKINDOC_TRIAGE_MAX_UPLOAD_BYTES", cls.max_upload_bytes, minimum=1),
            max_photos_per_consultation=env_int(
                env, "SKINDOC_TRIAGE_MAX_PHOTOS", cls.max_photos_per_consultation, minimum=1
            ),
            max_pixels=env_int(env, "SKINDOC_TRIAGE_MAX_PIXELS", cls.max_pixels, minimum=1),
            min_side=env_int(env, "SKINDOC_TRIAGE_MIN_SIDE", cls.min_side, minimum=1),
            stream=env.get("SKINDOC_TRIAGE_STREAM") or cls.stream,
            group=env.get("SKINDOC_TRIAGE_GROUP") or cls.group,
            max_batch=env_int(env, "SKINDOC_TRIAGE_MAX_BATCH", cls.max_batch, minimum=1),
            batch_wait_ms=env_int(env, "SKINDOC_TRIAGE_BATCH_WAIT_MS", cls.batch_wait_ms, minimum=0),
            claim_idle_ms=env_int(env, "SKINDOC_TRIAGE_CLAIM_IDLE_MS", cls.claim_idle_ms, minimum=1),
            max_attempts=env_int(env, "SKINDOC_TRIAGE_MAX_ATTEMPTS", cls.max_attempts, minimum=1),
            reconcile_s=env_int(env, "SKINDOC_TRIAGE_RECONCILE_S", cls.reconcile_s, minimum=1),
            reconcile_grace_s=env_int(env, "SKINDOC_TRIAGE_RECONCILE_GRACE_S", cls.reconcile_grace_s, minimum=0),
            heartbeat_s=env_int(env, "SKINDOC_TRIAGE_HEARTBEAT_S", cls.heartbeat_s, minimum=1),
            retry_max_s=env_int(env, "SKINDOC_TRIAGE_RETRY_MAX_S", cls.retry_max_s, minimum=1),
            model_dir=Path(model_dir) if model_dir else None,
            saliency=env_bool(env, "SKINDOC_TRIAGE_SALIENCY", cls.saliency),
            inprocess_worker=env_bool(env, "SKINDOC_INPROCESS_WORKER", cls.inprocess_worker),
        )
