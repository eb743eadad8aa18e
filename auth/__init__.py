"""Accounts, roles, passwords, tokens, OpenID Connect sign-in and the audit log."""
from __future__ import annotations

from pathlib import Path

from aiohttp import web

from store.connections import Stores
from store.migrations import Migration, discover


def migrations() -> list[Migration]:
    return discover("auth", Path(__file__).parent / "migrations")


def setup(app: web.Application, stores: Stores, settings) -> None:
    """Registers the auth routes (filled in by the auth work)."""
