"""Structured logs: one JSON object per line, with any `extra=` fields of the record.

Warnings from libraries go into the same log: Python warnings (Pillow's on a malformed EXIF
block, say) become records instead of raw lines on stderr, and the noisy ones — per malformed
upload, or per retry while a store is down — are let through once a minute with a count of
what was dropped, so an attack or an outage cannot flood the log.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import warnings

_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
# Loggers whose records repeat per request or per retry: one per message and source each minute.
RATE_LIMITED_LOGGERS = ("py.warnings", "asyncpg.pool", "engineio.server", "socketio.server")
RATE_LIMIT_S = 60.0


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class RateLimit(logging.Filter):
    """Lets one record per (logger, message template, source) through per interval, as one line.

    A repeat within the interval is dropped and counted; the next one let through says how many
    (`suppressed`). A traceback is cut to its last line: the first occurrence is enough to debug.
    """

    def __init__(self, interval_s: float = RATE_LIMIT_S) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._last: dict[tuple, float] = {}
        self._dropped: dict[tuple, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg), getattr(record, "source", None))
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            self._dropped[key] = self._dropped.get(key, 0) + 1
            return False
        self._last[key] = now
        dropped = self._dropped.pop(key, 0)
        if dropped:
            record.suppressed = dropped
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            record.error = f"{type(error).__name__}: {error}"
            record.exc_info = None
            record.exc_text = None
        return True


def _log_warning(message, category, filename, lineno, file=None, line=None) -> None:
    logging.getLogger("py.warnings").warning(
        "%s", str(message), extra={"category": category.__name__, "source": f"{filename}:{lineno}"}
    )


def configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    warnings.showwarning = _log_warning
    for name in RATE_LIMITED_LOGGERS:
        logger = logging.getLogger(name)
        logger.filters[:] = [RateLimit()]
