"""Checking untrusted JSON payloads (HTTP bodies and Socket.IO events) field by field.

Every failure is a DomainError with a code and the offending field, so a client
gets a typed answer and nothing is written.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from store.errors import DomainError, bad_request, unprocessable

_MISSING = object()

# No payload of ours nests deeper than a few levels; the parser recurses once per level, so a
# 60 kB body of brackets would otherwise exhaust the interpreter's stack (RecursionError, a 500).
MAX_JSON_DEPTH = 32
# A string literal (skipped whole, possessively: no backtracking) or a bracket.
_STRING_OR_BRACKET = re.compile(rb'"(?:[^"\\]|\\.)*+"|[\[\]{}]')


def json_nesting_exceeds(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when the text opens more than `limit` arrays or objects inside one another."""
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(raw):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        elif token in (b"]", b"}"):
            depth -= 1
    return False


def too_deeply_nested() -> DomainError:
    return unprocessable(
        "too_deeply_nested", f"The JSON nests more than {MAX_JSON_DEPTH} levels deep.", max_depth=MAX_JSON_DEPTH
    )


def parse_json_object(raw: bytes) -> dict[str, Any]:
    if json_nesting_exceeds(raw):
        raise too_deeply_nested()
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_request("malformed_json", f"The body is not valid JSON: {exc}") from None
    return require_object(value)


class DepthLimitedJson:
    """The json module's dumps and loads, loads refusing (ValueError) what nests too deep: for parsers
    that take a json module, like python-socketio's."""

    dumps = staticmethod(json.dumps)

    @staticmethod
    def loads(text: str | bytes, **kwargs: Any) -> Any:
        if json_nesting_exceeds(text.encode() if isinstance(text, str) else text):
            raise ValueError(f"JSON nested more than {MAX_JSON_DEPTH} levels deep")
        return json.loads(text, **kwargs)


def require_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise unprocessable("invalid_payload", "The payload must be a JSON object.")
    return value


def _field(payload: dict[str, Any], name: str, required: bool) -> Any:
    value = payload.get(name, _MISSING)
    if value is _MISSING or value is None:
        if required:
            raise unprocessable("missing_field", f"'{name}' is required.", field=name)
        return _MISSING
    return value


def _wrong_type(name: str, expected: str) -> DomainError:
    return unprocessable("invalid_field", f"'{name}' must be {expected}.", field=name)


def get_str(
    payload: dict[str, Any],
    name: str,
    *,
    required: bool = True,
    min_len: int = 0,
    max_len: int = 10_000,
    default: str | None = None,
) -> str | None:
    value = _field(payload, name, required)
    if value is _MISSING:
        return default
    if not isinstance(value, str):
        raise _wrong_type(name, "a string")
    if not min_len <= len(value) <= max_len:
        raise unprocessable("invalid_field", f"'{name}' must be {min_len} to {max_len} characters.", field=name)
    if not _storable(value):
        raise unprocessable(
            "invalid_field", f"'{name}' must be text without NUL characters or lone surrogates.", field=name
        )
    return value


def _storable(text: str) -> bool:
    # JSON may carry NUL and lone surrogates ("\u0000", "\ud800"); no PostgreSQL text column holds either.
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def get_uuid(payload: dict[str, Any], name: str, *, required: bool = True) -> uuid.UUID | None:
    """A UUID field of a body or query string; a malformed one is an invalid field (422).

    (An id in the URL path answers 404 instead: see store.http_input.path_id.)
    """
    raw = get_str(payload, name, required=required, max_len=64)
    if raw is None:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise unprocessable("invalid_field", f"'{name}' must be a UUID.", field=name) from None


def get_query_int(
    query: Mapping[str, str], name: str, *, minimum: int, maximum: int, default: int | None = None
) -> int | None:
    """An integer query-string parameter within bounds, or the default when absent."""
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise unprocessable("invalid_field", f"'{name}' must be an integer.", field=name) from None
    if not minimum <= value <= maximum:
        raise unprocessable("invalid_field", f"'{name}' must be between {minimum} and {maximum}.", field=name)
    return value


def get_int(
    payload: dict[str, Any],
    name: str,
    *,
    required: bool = True,
    minimum: int | None = None,
    maximum: int | None = None,
    default: int | None = None,
) -> int | None:
    value = _field(payload, name, required)
    if value is _MISSING:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong_type(name, "an integer")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise unprocessable("invalid_field", f"'{name}' must be between {minimum} and {maximum}.", field=name)
    return value


def get_bool(payload: dict[str, Any], name: str, *, required: bool = True, default: bool | None = None) -> bool | None:
    value = _field(payload, name, required)
    if value is _MISSING:
        return default
    if not isinstance(value, bool):
        raise _wrong_type(name, "true or false")
    return value


def get_choice(
    payload: dict[str, Any], name: str, choices: Iterable[str], *, required: bool = True, default: str | None = None
) -> str | None:
    allowed = tuple(choices)
    value = _field(payload, name, required)
    if value is _MISSING:
        return default
    if value not in allowed:
        raise unprocessable("invalid_field", f"'{name}' must be one of: {', '.join(allowed)}.", field=name)
    return value


def get_list(payload: dict[str, Any], name: str, *, required: bool = True, max_items: int = 100) -> list[Any] | None:
    value = _field(payload, name, required)
    if value is _MISSING:
        return None
    if not isinstance(value, list):
        raise _wrong_type(name, "a list")
    if len(value) > max_items:
        raise unprocessable("invalid_field", f"'{name}' may hold at most {max_items} items.", field=name)
    return value


def parse_timestamp(raw: str, name: str) -> datetime:
    """An ISO 8601 date and time that names its zone (a bare local time is ambiguous)."""
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise unprocessable("invalid_field", f"'{name}' must be an ISO 8601 date and time.", field=name) from None
    if value.tzinfo is None:
        raise unprocessable("invalid_field", f"'{name}' must include a time zone (e.g. Z).", field=name)
    return value
