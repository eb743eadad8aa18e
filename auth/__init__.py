"""Accounts, roles, passwords, tokens, OpenID Connect sign-in and the audit log."""
from __future__ import annotations

from pathlib import Path

from aiohttp import web

from auth.routes import AuthRoutes
from auth.service import AUTH_SERVICE, AuthService
from auth.tokens import AccessTokens, load_signing_key
from store.connections import Stores
from store.migrations import Migration, discover

__all__ = ["AUTH_SERVICE", "AuthService", "migrations", "setup"]


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

    app.on_cleanup.append(close_service)
    return service
