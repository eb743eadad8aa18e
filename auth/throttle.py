"""Throttling in Redis: sign-in attempts per account and per address, registrations per address.

An attempt is *reserved* before the slow password check, in one atomic script: the
counters go up first and the caller proceeds only if none is past its limit. So
twenty concurrent guesses cannot all slip in between a read and a write; at most
`max_failures` of them reach the password check. A successful sign-in hands its
reservation back; a failed one keeps it, so the counters count failures plus
attempts still in flight.
"""

from __future__ import annotations

import redis.asyncio as redis

from store.errors import DomainError

_PREFIX = "skindoc:auth:login-failures"
_REGISTRATION_PREFIX = "skindoc:auth:registrations"

# KEYS: the counters; ARGV: limit, window. Each counter goes up (its window starts with its first
# attempt); if one is now past the limit, all go back down and the longest wait is returned, else 0.
# (Not EXPIRE NX: the embedded Redis is 6.2.)
_RESERVE = """
local over = 0
for i, key in ipairs(KEYS) do
    local count = redis.call('INCR', key)
    if count == 1 then redis.call('EXPIRE', key, ARGV[2]) end
    if count > tonumber(ARGV[1]) then
        over = math.max(over, redis.call('TTL', key), 1)
    end
end
if over > 0 then
    for i, key in ipairs(KEYS) do
        if redis.call('EXISTS', key) == 1 then redis.call('DECR', key) end
    end
end
return over
"""

# Hands a reservation back; a counter whose window has ended is not recreated (it would never expire).
_RELEASE = """
for i, key in ipairs(KEYS) do
    if redis.call('EXISTS', key) == 1 then redis.call('DECR', key) end
end
return 0
"""


def _too_many(what: str, retry_after: int) -> DomainError:
    return DomainError(
        429,
        "too_many_attempts",
        f"Too many {what}; try again in {retry_after} seconds.",
        {"retry_after": retry_after},
        {"Retry-After": str(retry_after)},
    )


class LoginThrottle:
    def __init__(self, client: redis.Redis, max_failures: int, window_s: int) -> None:
        self._redis = client
        self._max_failures = max_failures
        self._window_s = window_s

    def _keys(self, email: str, client_ip: str | None) -> list[str]:
        keys = [f"{_PREFIX}:account:{email}"]
        if client_ip:
            keys.append(f"{_PREFIX}:ip:{client_ip}")
        return keys

    async def reserve(self, email: str, client_ip: str | None) -> None:
        """Counts one attempt for the account and the address, or raises 429 with Retry-After."""
        keys = self._keys(email, client_ip)
        retry_after = int(await self._redis.eval(_RESERVE, len(keys), *keys, self._max_failures, self._window_s))
        if retry_after:
            raise _too_many("failed sign-ins", retry_after)

    async def succeeded(self, email: str, client_ip: str | None) -> None:
        """The attempt was right: the account starts afresh and the address gets its attempt back."""
        await self._redis.delete(self._keys(email, None)[0])
        if client_ip:
            await self._redis.eval(_RELEASE, 1, f"{_PREFIX}:ip:{client_ip}")


class RegistrationThrottle:
    """Each registration costs a password hash: at most `max_per_address` per address per window."""

    def __init__(self, client: redis.Redis, max_per_address: int, window_s: int) -> None:
        self._redis = client
        self._max = max_per_address
        self._window_s = window_s

    async def reserve(self, client_ip: str | None) -> None:
        if not client_ip:
            return
        key = f"{_REGISTRATION_PREFIX}:ip:{client_ip}"
        retry_after = int(await self._redis.eval(_RESERVE, 1, key, self._max, self._window_s))
        if retry_after:
            raise _too_many("registrations from this address", retry_after)
