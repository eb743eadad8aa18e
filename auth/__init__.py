"""Accounts, roles, passwords, tokens, OpenID Connect sign-in and the audit log."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from auth.audit_chain import keep_checkpointing, load_audit_key
from auth.context import AUTH_SERVICE
from auth.routes import AuthRoutes
from auth.service import AuthService
from auth.tokens import AccessTokens, load_signing_key
from store.connections import Stores
from store.migrations import Migration, discover

__all__ = ["APPEND_ONLY_TABLES", "AUTH_SERVICE", "AuthService", "migrations", "setup"]

# Tables the runtime database role may only read and append to (store.migrations.grant_runtime_privileges).
APPEND_ONLY_TABLES = ("audit_log", "audit_checkpoints")


def migrations() -> list[Migration]:
    return discover("auth", Path(__file__).parent / "migrations")


def build_service(stores: Stores, settings) -> AuthService:
    key = load_signing_key(settings.auth, settings.data_dir)
    return AuthService(stores, settings.auth, AccessTokens(key, settings.auth))


def setup(app: web.Application, stores: Stores, settings) -> AuthService:
    """Registers the auth routes and returns the service (also kept in app[AUTH_SERVICE])."""
    service = build_service(stores, settings)
    app[AUTH_SERVICE] = service
    AuthRoutes(settings.max_json_bytes).register_on(app)

    async def close_service(app: web.Application) -> None:
        await service.close()

    async def sign_checkpoints(app: web.Application) -> AsyncIterator[None]:
        key = load_audit_key(settings.auth, settings.data_dir)
        task = asyncio.create_task(keep_checkpointing(stores.pool, key, settings.auth.audit_checkpoint_interval_s))
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    app.on_cleanup.append(close_service)
    app.cleanup_ctx.append(sign_checkpoints)
    return service
