"""Password policy and argon2id hashing, run in a worker thread so a ~100 ms hash never blocks the event loop."""

from __future__ import annotations

import asyncio
from functools import cache
from pathlib import Path

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from auth.config import AuthConfig
from store.errors import unprocessable

MAX_PASSWORD_LENGTH = 1024


@cache
def common_passwords() -> frozenset[str]:
    text = (Path(__file__).parent / "common_passwords.txt").read_text()
    lines = (line.strip().lower() for line in text.splitlines())
    return frozenset(line for line in lines if line and not line.startswith("#"))


def check_policy(password: str, config: AuthConfig, *, field: str = "password") -> None:
    if len(password) < config.password_min_length:
        raise unprocessable(
            "weak_password", f"The password must be at least {config.password_min_length} characters.", field=field
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise unprocessable(
            "invalid_field", f"The password may be at most {MAX_PASSWORD_LENGTH} characters.", field=field
        )
    if password.lower() in common_passwords():
        raise unprocessable(
            "weak_password", "This password is on a list of commonly used passwords; choose another.", field=field
        )


class Passwords:
    """Hashes and verifies with the configured argon2id cost."""

    def __init__(self, config: AuthConfig) -> None:
        self._hasher = PasswordHasher(
            time_cost=config.argon2_time_cost,
            memory_cost=config.argon2_memory_kib,
            parallelism=config.argon2_parallelism,
            type=Type.ID,
        )
        self._dummy_hash: str | None = None

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True when the password matches; an account without a password (OIDC only) never matches."""
        if password_hash is None:
            await self.spend_equal_time(password)
            return False
        try:
            return await asyncio.to_thread(self._hasher.verify, password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)

    async def spend_equal_time(self, password: str) -> None:
        """Costs what a real check costs, so response time does not reveal whether an email is registered."""
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash("not a real password, only a timing equaliser")
        try:
            await asyncio.to_thread(self._hasher.verify, self._dummy_hash, password)
        except VerificationError:
            pass
