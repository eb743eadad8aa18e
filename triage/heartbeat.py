"""Worker heartbeats: each worker says, every few seconds, that it lives, whether it can score, and why not.

A worker keeps its own `WorkerStatus` (its health endpoint reads it) and publishes it to a
Redis hash beside the job stream, one field per worker; web nodes read the hash to tell the
truth about scoring in their readiness: ok, degraded (workers alive but warming up or
failing a store) or down (no heartbeat lately).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import redis.asyncio as redis

# A heartbeat older than this many intervals means its worker is gone (or cannot reach Redis).
STALE_AFTER_BEATS = 3
# Entries of workers gone this long are removed from the hash.
FORGET_AFTER_S = 3600


def heartbeats_key(stream: str) -> str:
    return f"{stream}:workers"


@dataclass
class WorkerStatus:
    consumer: str
    model_version: str | None = None
    batch_sizes: tuple[int, ...] = ()
    # Every batch size is compiled: no photo will wait on a compilation.
    compiled: bool = False
    # What stops it working right now ("redis", "database", or an error's name); None when working.
    fault: str | None = None
    # Wall-clock time of the last turn of the work loop that went through.
    last_ok_at: float | None = None
    scored: int = 0
    started_at: float = field(default_factory=time.time)

    def ready(self, stale_s: float) -> bool:
        return (
            self.compiled
            and self.fault is None
            and self.last_ok_at is not None
            and time.time() - self.last_ok_at <= stale_s
        )

    def as_dict(self, stale_s: float) -> dict[str, Any]:
        return {**asdict(self), "batch_sizes": list(self.batch_sizes), "ready": self.ready(stale_s), "at": time.time()}


async def publish(client: redis.Redis, stream: str, status: WorkerStatus, stale_s: float) -> None:
    key = heartbeats_key(stream)
    async with client.pipeline(transaction=False) as pipe:
        pipe.hset(key, status.consumer, json.dumps(status.as_dict(stale_s)))
        pipe.expire(key, FORGET_AFTER_S)
        await pipe.execute()


async def withdraw(client: redis.Redis, stream: str, consumer: str) -> None:
    """A worker stopping on purpose leaves no heartbeat to go stale."""
    await client.hdel(heartbeats_key(stream), consumer)


async def read_all(client: redis.Redis, stream: str) -> list[dict[str, Any]]:
    """Every worker's last heartbeat; those of workers gone for an hour are forgotten on the way."""
    key = heartbeats_key(stream)
    beats, forgotten = [], []
    now = time.time()
    for consumer, raw in (await client.hgetall(key)).items():
        try:
            beat = json.loads(raw)
            age = now - float(beat["at"])
        except (ValueError, KeyError, TypeError):
            forgotten.append(consumer)
            continue
        if age > FORGET_AFTER_S:
            forgotten.append(consumer)
        else:
            beats.append({**beat, "age_s": round(max(age, 0.0), 2)})
    if forgotten:
        await client.hdel(key, *forgotten)
    return beats


def triage_health(beats: list[dict[str, Any]], stale_s: float) -> dict[str, Any]:
    """ok: a live worker can score; degraded: live workers, none able to score yet; down: none live."""
    live = [b for b in beats if b["age_s"] <= stale_s]
    ready = [b for b in live if b.get("ready")]
    status = "ok" if ready else "degraded" if live else "down"
    report: dict[str, Any] = {
        "status": status,
        "workers": len(live),
        "ready_workers": len(ready),
        "last_heartbeat_age_s": min((b["age_s"] for b in beats), default=None),
    }
    if status == "degraded":
        report["reasons"] = sorted(
            {b.get("fault") or ("compiling" if not b.get("compiled") else "stalled") for b in live}
        )
    return report
