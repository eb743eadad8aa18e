"""Telling a store outage from a bug, answering it with 503, and logging it once.

A request or event that fails because PostgreSQL or Redis is unreachable is not a bug of
ours: the caller gets 503 `store_unavailable` with Retry-After and tries again. The log gets
one warning when a store starts failing and one line when it answers again, however many
requests failed in between, instead of a traceback per request.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable

import asyncpg
from redis import exceptions as redis_errors

from store.errors import DomainError

log = logging.getLogger(__name__)

DATABASE = "database"
REDIS = "redis"
# What a client is told to wait before trying again.
RETRY_AFTER_SECONDS = 2
PROBE_INTERVAL_SECONDS = 0.5

_REDIS_OUTAGES = (redis_errors.ConnectionError, redis_errors.TimeoutError)
_DATABASE_OUTAGES = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)


def outage_kind(exc: BaseException) -> str | None:
    """DATABASE or REDIS when `exc` (or an exception it was raised from) means that store is unreachable."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, _REDIS_OUTAGES):
            return REDIS
        if isinstance(exc, _DATABASE_OUTAGES):
            return DATABASE
        if isinstance(exc, asyncpg.InterfaceError) and "closed" in str(exc):
            return DATABASE  # a pooled connection that died with its server
        if isinstance(exc, ConnectionError):
            return DATABASE  # asyncpg's connect surfaces a refusal as the OS error; redis-py wraps its own
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def store_unavailable(kind: str) -> DomainError:
    name = "The database" if kind == DATABASE else "The message broker (Redis)"
    return DomainError(
        503,
        "store_unavailable",
        f"{name} is unavailable right now; try again shortly.",
        {"store": kind, "retry_after": RETRY_AFTER_SECONDS},
        {"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


class OutageWatch:
    """One store's state as this process sees it: a warning when it goes, one line when it is back.

    While the store is down a probe task asks it every half second, so recovery is logged (and
    `on_recovery` run) even when no request comes in to find out.
    """

    def __init__(
        self,
        kind: str,
        probe: Callable[[], Awaitable[object]],
        on_recovery: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.kind = kind
        self._probe = probe
        self._on_recovery = on_recovery
        self.down_since: float | None = None
        self.failures = 0
        self._prober: asyncio.Task | None = None

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def report(self, exc: BaseException) -> None:
        self.failures += 1
        if self.down_since is not None:
            return
        self.down_since = time.monotonic()
        log.warning("%s unavailable", self.kind, extra={"store": self.kind, "error": f"{type(exc).__name__}: {exc}"})
        try:
            self._prober = asyncio.get_running_loop().create_task(self._probe_until_back())
        except RuntimeError:
            pass  # no loop (a synchronous caller): the next successful call goes unreported, nothing else

    async def _probe_until_back(self) -> None:
        while True:
            await asyncio.sleep(PROBE_INTERVAL_SECONDS)
            try:
                async with asyncio.timeout(2):
                    await self._probe()
            except asyncio.CancelledError:
                raise
            except Exception:
                continue
            if self._on_recovery is not None:
                await self._on_recovery()
            self.recovered()
            return

    def recovered(self) -> None:
        if self.down_since is None:
            return
        log.warning(
            "%s available again",
            self.kind,
            extra={
                "store": self.kind,
                "outage_s": round(time.monotonic() - self.down_since, 2),
                "failed_calls": self.failures,
            },
        )
        self.down_since = None
        self.failures = 0

    async def close(self) -> None:
        if self._prober is not None:
            self._prober.cancel()
            await asyncio.gather(self._prober, return_exceptions=True)
            self._prober = None


class Backoff:
    """Capped exponential backoff with full jitter: many processes retrying never retry in step."""

    def __init__(self, base_s: float, cap_s: float) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.attempt = 0

    def next_delay(self) -> float:
        delay = min(self.cap_s, self.base_s * 2**self.attempt)
        self.attempt = min(self.attempt + 1, 30)
        return random.uniform(delay / 2, delay)

    def reset(self) -> None:
        self.attempt = 0


async def repeat_every(
    interval_s: float,
    turn: Callable[[], Awaitable[object]],
    *,
    logger: logging.Logger,
    failing: str,
    working_again: str,
    faults: tuple[type[BaseException], ...] = (Exception,),
) -> None:
    """Runs `turn` every interval until cancelled. A turn that raises one of `faults` is tried again next
    interval, logged once per outage (`failing`, with its traceback) and once when a turn works again."""
    down = False
    while True:
        await asyncio.sleep(interval_s)
        try:
            await turn()
        except faults:
            if not down:
                logger.warning(failing, exc_info=True)
            down = True
            continue
        if down:
            logger.info(working_again)
        down = False
