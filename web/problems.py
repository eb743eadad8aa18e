"""Every error as an RFC 9457 problem document (application/problem+json), 404 and 405 included."""

from __future__ import annotations

import json
import logging
import secrets
from typing import Any

from aiohttp import web

from auth.context import REQUEST_ID
from store.errors import DomainError

log = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"
REQUEST_ID_HEADER = "X-Request-Id"
# A client's own id for its request: echoed back under this name, never taken as ours.
CLIENT_REQUEST_ID_HEADER = "X-Client-Request-Id"
MAX_CLIENT_REQUEST_ID = 64

# Stable codes for the errors aiohttp raises itself.
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable_content",
    429: "too_many_requests",
}


def problem_response(
    status: int,
    code: str,
    detail: str,
    request_id: str,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = {
        "type": f"https://skindoc.example/problems/{code}",
        "title": code.replace("_", " ").capitalize(),
        "status": status,
        "code": code,
        "detail": detail,
        "request_id": request_id,
        **(extra or {}),
    }
    response = web.Response(status=status, text=json.dumps(body), content_type=PROBLEM_CONTENT_TYPE)
    response.headers.update(headers or {})
    return response


def _http_exception_problem(exc: web.HTTPException, request_id: str) -> web.Response:
    code = _HTTP_CODES.get(exc.status, "http_error")
    detail = exc.reason
    if exc.status == 413:
        detail = "The request body is larger than this endpoint accepts."
    headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After", "WWW-Authenticate")}
    return problem_response(exc.status, code, detail, request_id, headers=headers)


def client_request_id(request: web.Request) -> str | None:
    """The id the client sent (X-Request-Id), if it is short printable ASCII; otherwise none."""
    value = request.headers.get(REQUEST_ID_HEADER, "")
    if 0 < len(value) <= MAX_CLIENT_REQUEST_ID and value.isascii() and value.isprintable():
        return value
    return None


@web.middleware
async def problem_middleware(request: web.Request, handler):
    """Gives each request an id of our own, and turns every error into a problem document.

    The id written to the audit log and the logs is always generated here: a client's
    X-Request-Id could claim anything (say "cli"). The client's own is only echoed back."""
    request_id = secrets.token_hex(8)
    request[REQUEST_ID] = request_id
    client_id = client_request_id(request)
    try:
        response = await handler(request)
    except DomainError as exc:
        response = problem_response(exc.status, exc.code, exc.detail, request_id, exc.extra, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _http_exception_problem(exc, request_id)
    except Exception:
        log.exception(
            "unhandled error", extra={"request_id": request_id, "client_request_id": client_id, "path": request.path}
        )
        response = problem_response(
            500, "internal_error", "Something went wrong on our side; it has been logged.", request_id
        )
    response.headers[REQUEST_ID_HEADER] = request_id
    if client_id is not None:
        response.headers[CLIENT_REQUEST_ID_HEADER] = client_id
    return response
