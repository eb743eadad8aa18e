"""Reading typed settings from environment variables, failing at start-up with a message that names the variable."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _read(env: Mapping[str, str], name: str, convert: Callable[[str], T], kind: str) -> T | None:
    """The variable converted, or None where it is unset or empty."""
    raw = env.get(name)
    if raw is None or raw == "":
        return None
    try:
        return convert(raw)
    except ValueError:
        raise SystemExit(f"{name} must be {kind}, got {raw!r}") from None


def env_int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    value = _read(env, name, int, "an integer")
    if value is None:
        return default
    if value < minimum:
        raise SystemExit(f"{name} must be at least {minimum}, got {value}")
    return value


def env_fraction(env: Mapping[str, str], name: str, default: float) -> float:
    value = _read(env, name, float, "a number between 0 and 1")
    if value is None:
        return default
    if not 0 <= value <= 1:
        raise SystemExit(f"{name} must be between 0 and 1, got {value}")
    return value


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw == "":
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise SystemExit(f"{name} must be true or false, got {raw!r}")
