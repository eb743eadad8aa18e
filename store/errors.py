"""Error values shared by every domain: an HTTP status, a stable code and a message a person can act on.

The web layer turns a DomainError into an RFC 9457 problem response and Socket.IO
handlers turn it into an error ack; domains raise it without knowing either.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class DomainError(Exception):
    status: int
    code: str
    detail: str
    extra: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "detail": self.detail, **self.extra}


def bad_request(code: str, detail: str, **extra: Any) -> DomainError:
    return DomainError(400, code, detail, extra)


def unauthorized(code: str, detail: str, **extra: Any) -> DomainError:
    return DomainError(401, code, detail, extra)


def forbidden(code: str, detail: str, **extra: Any) -> DomainError:
    return DomainError(403, code, detail, extra)


def not_found(code: str, detail: str, **extra: Any) -> DomainError:
    return DomainError(404, code, detail, extra)


def conflict(code: str, detail: str, **extra: Any) -> DomainError:
    return DomainError(409, code, detail, extra)


def unprocessable(code: str, detail: str, **extra: Any) -> DomainError:
    return DomainError(422, code, detail, extra)
