"""How a triage worker reports its faults: named in its heartbeat, logged once when one starts (a traceback
only for what is not a store outage) and once when work resumes, so an outage of minutes is two log lines."""

from __future__ import annotations

import logging
import time

from store.outages import outage_kind
from triage.heartbeat import WorkerStatus

log = logging.getLogger(__name__)


class FaultLog:
    def __init__(self, consumer: str, status: WorkerStatus) -> None:
        self._consumer = consumer
        self._status = status
        self._since: float | None = None
        self._failed_turns = 0

    def turn_went_through(self) -> None:
        if self._status.last_ok_at is None:
            log.info("triage worker ready", extra={"consumer": self._consumer})
        self._status.last_ok_at = time.time()
        if self._since is None:
            return
        log.warning(
            "triage worker working again",
            extra={
                "consumer": self._consumer,
                "fault": self._status.fault,
                "failed_turns": self._failed_turns,
                "outage_s": round(time.monotonic() - self._since, 2),
            },
        )
        self._status.fault = None
        self._since = None
        self._failed_turns = 0

    def turn_failed(self, exc: Exception, *, missing_group: bool) -> None:
        """`missing_group`: the stream's consumer group is gone, so Redis lost its data."""
        fault = "redis_data_lost" if missing_group else outage_kind(exc) or type(exc).__name__
        self._failed_turns += 1
        if fault == self._status.fault:
            return
        if self._since is None:
            self._since = time.monotonic()
        self._status.fault = fault
        if missing_group or outage_kind(exc) is not None:
            log.warning(
                "triage worker cannot work; retrying with backoff",
                extra={"consumer": self._consumer, "fault": fault, "error": f"{type(exc).__name__}: {exc}"},
            )
        else:
            log.exception("triage worker turn failed; retrying with backoff", extra={"consumer": self._consumer})
