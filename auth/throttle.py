"""Sign-in throttling in Redis: too many failures for one account or from one address in a window → 429."""
from __future__ import annotations

import redis.asyncio as redis

from store.errors import DomainError

_PREFIX = "skindoc:auth:login-failures"


class LoginThrottle:
    def __init__(self, client: redis.Redis, max_failures: int, window_s: int) -> None:
        self._redis = client
        self._max_failures = max_failures
        self._window_s = window_s

    def _keys(self, email: str, client_ip: str | None) -> list[bytes | str]:
        keys = [f"{_PREFIX}:account:{email}"]
        if client_ip:
            keys.append(f"{_PREFIX}:ip:{client_ip}")
        return keys

    async def check(self, email: str, client_ip: str | None) -> None:
        """Raises 429 with Retry-After while the account or the address has used up its failures."""
        keys = self._keys(email, client_ip)
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.get(key)
                pipe.ttl(key)
            results = await pipe.execute()
        waits = [max(int(ttl), 1) for count, ttl in zip(results[::2], results[1::2])
                 if count is not None and int(count) >= self._max_failures]
        if waits:
            retry_after = max(waits)
            raise DomainError(429, "too_many_attempts",
                              f"Too many failed sign-ins; try again in {retry_after} seconds.",
                              {"retry_after": retry_after}, {"Retry-After": str(retry_after)})

    async def record_failure(self, email: str, client_ip: str | None) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            for key in self._keys(email, client_ip):
                # SET NX EX starts the window on the first failure; INCR keeps that expiry.
                # (Not EXPIRE NX: the embedded Redis is 6.2.)
                pipe.set(key, 0, ex=self._window_s, nx=True)
                pipe.incr(key)
            await pipe.execute()

    async def clear_account(self, email: str) -> None:
        await self._redis.delete(f"{_PREFIX}:account:{email}")
