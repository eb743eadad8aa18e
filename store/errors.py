"""Error values shared by every domain: an HTTP status, a stable code and a message a person can act on.

The web layer turns a DomainError into an RFC 9457 problem response and Socket.IO
handlers turn it into an error ack; domains raise it without knowing either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


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


class ErrorOfStatus(Protocol):
    def __call__(self, code: str, detail: str, **extra: Any) -> DomainError: ...


def _of_status(status: int, name: str) -> ErrorOfStatus:
    """A constructor of DomainErrors with this status: the extra keywords go into the problem document."""

    def make(code: str, detail: str, **extra: Any) -> DomainError:
        return DomainError(status, code, detail, extra)

    make.__name__ = make.__qualname__ = name
    return make


bad_request = _of_status(400, "bad_request")
unauthorized = _of_status(401, "unauthorized")
forbidden = _of_status(403, "forbidden")
not_found = _of_status(404, "not_found")
conflict = _of_status(409, "conflict")
unprocessable = _of_status(422, "unprocessable")
