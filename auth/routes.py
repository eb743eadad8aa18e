"""HTTP routes under /api/v1/auth, /api/v1/me and /api/v1/admin: check the input, call the service, answer."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Any

from aiohttp import web

from auth.authz import authenticate, require_role
from auth.context import AUTH_SERVICE, audit_context
from auth.service import AuthService
from auth.store import AuditQuery
from store import payloads
from store.errors import unprocessable
from store.http_input import path_id, read_json

# Deliberately loose (one @, a dot in the domain, no spaces or control characters):
# no pattern proves an address exists, so this only catches typing mistakes.
_EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$")
MAX_EMAIL_LENGTH = 254
MAX_NAME_LENGTH = 100
MAX_TOKEN_LENGTH = 8192
DOCTOR_STATUSES = ("pending", "active", "disabled", "all")
# Bidirectional-text controls: in a name they can reorder what is shown around it ("Dr. Smith" that
# displays as someone else, a name that reverses the message text after it).
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def unshowable(text: str) -> str | None:
    """What makes text unfit to show to other people (control or bidi-control characters), or None."""
    if any(unicodedata.category(c) == "Cc" for c in text):
        return "control characters"
    if any(c in BIDI_CONTROLS for c in text):
        return "bidirectional-text control characters"
    return None


def _service(request: web.Request) -> AuthService:
    return request.config_dict[AUTH_SERVICE]


def _text(payload: dict[str, Any], name: str, *, shown_to_people: bool = False, **limits: Any) -> str | None:
    """A string field; one shown to people (a name) also may not hold control characters."""
    value = payloads.get_str(payload, name, **limits)
    problem = unshowable(value) if value is not None and shown_to_people else None
    if problem is not None:
        raise unprocessable("invalid_field", f"'{name}' must not contain {problem}.", field=name)
    return value


def normalise_email(raw: str) -> str | None:
    """The address lower-cased and trimmed, or None when it does not look like one."""
    email = raw.strip().lower()
    return email if len(email) <= MAX_EMAIL_LENGTH and _EMAIL.match(email) else None


def _email(payload: dict[str, Any]) -> str:
    email = normalise_email(_text(payload, "email", min_len=3, max_len=MAX_EMAIL_LENGTH))
    if email is None:
        raise unprocessable("invalid_field", "'email' is not an email address.", field="email")
    return email


def _name(payload: dict[str, Any], *, required: bool) -> str | None:
    name = _text(payload, "name", required=required, min_len=1, max_len=MAX_NAME_LENGTH, shown_to_people=True)
    if name is not None and not name.strip():
        raise unprocessable("invalid_field", "'name' must not be blank.", field="name")
    return name.strip() if name is not None else None


def _password(payload: dict[str, Any], name: str = "password", *, required: bool = True) -> str | None:
    return _text(payload, name, required=required, min_len=1, max_len=1024)


class AuthRoutes:
    def __init__(self, max_json_bytes: int) -> None:
        self._max_json_bytes = max_json_bytes

    def register_on(self, app: web.Application) -> None:
        app.router.add_post("/api/v1/auth/register", self.register)
        app.router.add_post("/api/v1/auth/login", self.login)
        app.router.add_post("/api/v1/auth/refresh", self.refresh)
        app.router.add_post("/api/v1/auth/logout", self.logout)
        app.router.add_post("/api/v1/auth/oidc", self.oidc)
        app.router.add_get("/api/v1/me", self.get_me)
        app.router.add_patch("/api/v1/me", self.patch_me)
        app.router.add_get("/api/v1/admin/doctors", self.list_doctors)
        app.router.add_post("/api/v1/admin/doctors/{doctor_id}/approve", self.approve_doctor)
        app.router.add_get("/api/v1/admin/audit", self.search_audit)

    async def _body(self, request: web.Request) -> dict[str, Any]:
        return await read_json(request, self._max_json_bytes)

    async def register(self, request: web.Request) -> web.Response:
        payload = await self._body(request)
        email = _email(payload)
        password = _password(payload)
        name = _name(payload, required=True)
        role = payloads.get_choice(payload, "role", ("patient", "doctor"), required=False, default="patient")
        user = await _service(request).register(
            email=email, password=password, name=name, role=role, ctx=audit_context(request)
        )
        return web.json_response({"user": user.as_json()}, status=201)

    async def login(self, request: web.Request) -> web.Response:
        payload = await self._body(request)
        email = _email(payload)
        password = _password(payload)
        return web.json_response(
            await _service(request).login(email=email, password=password, ctx=audit_context(request))
        )

    async def refresh(self, request: web.Request) -> web.Response:
        payload = await self._body(request)
        token = _text(payload, "refresh_token", min_len=1, max_len=MAX_TOKEN_LENGTH)
        return web.json_response(await _service(request).refresh(token, ctx=audit_context(request)))

    async def logout(self, request: web.Request) -> web.Response:
        principal = await authenticate(request)
        payload = await self._body(request)
        token = _text(payload, "refresh_token", min_len=1, max_len=MAX_TOKEN_LENGTH)
        await _service(request).logout(principal, token, ctx=audit_context(request))
        return web.Response(status=204)

    async def oidc(self, request: web.Request) -> web.Response:
        payload = await self._body(request)
        id_token = _text(payload, "id_token", min_len=1, max_len=MAX_TOKEN_LENGTH)
        nonce = _text(payload, "nonce", required=False, min_len=1, max_len=512)
        return web.json_response(
            await _service(request).oidc_sign_in(id_token, nonce=nonce, ctx=audit_context(request))
        )

    async def get_me(self, request: web.Request) -> web.Response:
        principal = await authenticate(request)
        user = await _service(request).get_user(principal.user_id)
        return web.json_response({"user": user.as_json()})

    async def patch_me(self, request: web.Request) -> web.Response:
        principal = await authenticate(request)
        payload = await self._body(request)
        unknown = set(payload) - {"name", "current_password", "new_password"}
        if unknown:
            raise unprocessable("unknown_field", f"Unknown field(s): {', '.join(sorted(unknown))}.", field=min(unknown))
        user = await _service(request).update_profile(
            principal,
            name=_name(payload, required=False),
            current_password=_password(payload, "current_password", required=False),
            new_password=_password(payload, "new_password", required=False),
            ctx=audit_context(request),
        )
        return web.json_response({"user": user.as_json()})

    async def list_doctors(self, request: web.Request) -> web.Response:
        await require_role(request, "admin")
        query = dict(request.query)
        status = payloads.get_choice(query, "status", DOCTOR_STATUSES, required=False, default="pending")
        limit = payloads.get_query_int(query, "limit", default=50, minimum=1, maximum=200)
        offset = payloads.get_query_int(query, "offset", default=0, minimum=0, maximum=1_000_000)
        doctors = await _service(request).list_doctors(
            status=None if status == "all" else status, limit=limit, offset=offset
        )
        return web.json_response({"doctors": [d.as_json() for d in doctors]})

    async def approve_doctor(self, request: web.Request) -> web.Response:
        await require_role(request, "admin")
        doctor_id = path_id(request, "doctor_id")
        user = await _service(request).approve_doctor(doctor_id, ctx=audit_context(request))
        return web.json_response({"user": user.as_json()})

    async def search_audit(self, request: web.Request) -> web.Response:
        await require_role(request, "admin")
        query = _audit_query(dict(request.query))
        entries = await _service(request).audit_log.search(query, ctx=audit_context(request))
        next_before = entries[-1]["id"] if len(entries) == query.limit else None
        return web.json_response({"entries": entries, "next_before": next_before})


def _audit_query(query: dict[str, str]) -> AuditQuery:
    return AuditQuery(
        actor_id=payloads.get_uuid(query, "actor", required=False),
        action=_text(query, "action", required=False, min_len=1, max_len=100),
        subject_type=_text(query, "subject_type", required=False, min_len=1, max_len=100),
        subject_id=_text(query, "subject_id", required=False, min_len=1, max_len=200),
        since=_query_time(query, "since"),
        until=_query_time(query, "until"),
        before_id=payloads.get_query_int(query, "before", default=None, minimum=1, maximum=2**62),
        limit=payloads.get_query_int(query, "limit", default=50, minimum=1, maximum=200),
    )


def _query_time(query: dict[str, str], name: str) -> datetime | None:
    raw = query.get(name)
    return payloads.parse_timestamp(raw, name) if raw is not None else None
