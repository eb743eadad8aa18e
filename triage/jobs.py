"""The triage job stream: one Redis stream entry per accepted photo, read through a consumer group.

An entry stays in the group's pending list from delivery until a worker acknowledges it, so a
worker that dies mid-batch leaves its jobs there for another worker to claim (XAUTOCLAIM).
Acknowledged entries are deleted, so the stream holds only work not yet done.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import redis.asyncio as redis
from redis.exceptions import ResponseError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    entry_id: bytes
    photo_id: uuid.UUID
    consultation_id: uuid.UUID
    enqueued_ms: int


async def enqueue_photo_jobs(client: redis.Redis, stream: str, photos: Sequence[tuple[uuid.UUID, uuid.UUID]]) -> None:
    """Adds one job per (photo id, consultation id)."""
    if not photos:
        return
    now_ms = str(int(time.time() * 1000))
    async with client.pipeline(transaction=False) as pipe:
        for photo_id, consultation_id in photos:
            pipe.xadd(stream, {"photo": str(photo_id), "consultation": str(consultation_id), "enqueued_ms": now_ms})
        await pipe.execute()


def is_missing_group(exc: BaseException) -> bool:
    """Redis lost the stream or its group (a restart without persistence, a flush): create it again."""
    return isinstance(exc, ResponseError) and ("NOGROUP" in str(exc) or "no such key" in str(exc))


async def queued_photo_ids(client: redis.Redis, stream: str, page: int = 1000) -> set[uuid.UUID]:
    """The photos with a job in the stream, delivered or not (acknowledged jobs are deleted)."""
    photos: set[uuid.UUID] = set()
    start = "-"
    while True:
        entries = await client.xrange(stream, min=start, max="+", count=page)
        for _, fields in entries:
            try:
                photos.add(uuid.UUID(fields[b"photo"].decode()))
            except (KeyError, ValueError, UnicodeDecodeError):
                continue
        if len(entries) < page:
            return photos
        start = "(" + entries[-1][0].decode()


async def ensure_group(client: redis.Redis, stream: str, group: str) -> None:
    try:
        await client.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def _parse(entry_id: bytes, fields: dict[bytes, bytes]) -> Job | None:
    try:
        return Job(
            entry_id,
            uuid.UUID(fields[b"photo"].decode()),
            uuid.UUID(fields[b"consultation"].decode()),
            int(fields[b"enqueued_ms"]),
        )
    except (KeyError, ValueError, UnicodeDecodeError):
        return None


async def _parsed_or_dropped(
    client: redis.Redis, stream: str, group: str, entries: Sequence[tuple[bytes, dict[bytes, bytes]]]
) -> list[Job]:
    jobs, malformed = [], []
    for entry_id, fields in entries:
        job = _parse(entry_id, fields) if fields else None
        if job is None:
            malformed.append(entry_id)
        else:
            jobs.append(job)
    if malformed:
        # Not ours to interpret: acknowledging keeps them from being redelivered forever.
        log.warning("dropping malformed triage jobs", extra={"entries": [e.decode() for e in malformed]})
        await acknowledge(client, stream, group, malformed)
    return jobs


async def read_new_jobs(
    client: redis.Redis, stream: str, group: str, consumer: str, *, count: int, block_ms: int
) -> list[Job]:
    """Up to `count` jobs never delivered before, waiting at most `block_ms` for the first."""
    reply = await client.xreadgroup(group, consumer, {stream: ">"}, count=count, block=max(1, block_ms))
    entries = [entry for _, stream_entries in reply or [] for entry in stream_entries]
    return await _parsed_or_dropped(client, stream, group, entries)


async def read_own_pending(client: redis.Redis, stream: str, group: str, consumer: str, *, count: int) -> list[Job]:
    """Jobs delivered to this consumer and not acknowledged: after a failed turn it takes them up
    again at once rather than waiting for another worker to claim them."""
    reply = await client.xreadgroup(group, consumer, {stream: "0"}, count=count)
    entries = [entry for _, stream_entries in reply or [] for entry in stream_entries]
    return await _parsed_or_dropped(client, stream, group, entries)


async def claim_stale_jobs(
    client: redis.Redis, stream: str, group: str, consumer: str, *, min_idle_ms: int, count: int
) -> list[Job]:
    """Takes over up to `count` jobs delivered to some consumer that has not acknowledged them for a while."""
    reply = await client.xautoclaim(stream, group, consumer, min_idle_time=min_idle_ms, start_id="0-0", count=count)
    entries = reply[1]
    deleted = reply[2] if len(reply) > 2 else []
    if deleted:
        await acknowledge(client, stream, group, deleted)
    return await _parsed_or_dropped(client, stream, group, entries)


async def acknowledge(client: redis.Redis, stream: str, group: str, entry_ids: Sequence[bytes]) -> None:
    if not entry_ids:
        return
    async with client.pipeline(transaction=True) as pipe:
        pipe.xack(stream, group, *entry_ids)
        pipe.xdel(stream, *entry_ids)
        await pipe.execute()


async def forget_departed_consumers(client: redis.Redis, stream: str, group: str, *, idle_ms: int) -> int:
    """Removes consumers that hold no job and have not read for `idle_ms`: workers long gone (every
    start is a new consumer). A live worker reads at least every second, so it is never one of them."""
    departed = [
        c["name"] for c in await client.xinfo_consumers(stream, group) if c["pending"] == 0 and c["idle"] > idle_ms
    ]
    for name in departed:
        await client.xgroup_delconsumer(stream, group, name)
    return len(departed)
