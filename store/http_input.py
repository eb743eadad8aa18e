"""What every domain's HTTP routes read from a request before anything else: the JSON body and ids in the path.

The one module under store/ that imports aiohttp: it sits here so auth, chat and triage routes share it
without importing one another. Fields inside a body are checked by store.payloads.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from store import payloads
from store.errors import DomainError, not_found


async def read_json(request: web.Request, max_bytes: int) -> dict[str, Any]:
    """The body as a JSON object, refused (413/415/400/422) before anything is done with it."""
    if request.content_type not in ("application/json", "application/octet-stream") and request.body_exists:
        raise DomainError(415, "unsupported_media_type", "Send the body as application/json.")
    if request.content_length is not None and request.content_length > max_bytes:
        raise _too_large(max_bytes)
    raw = bytearray()
    # read(n) returns what has arrived so far, so loop until the end of the body or one byte past the limit.
    while len(raw) <= max_bytes:
        chunk = await request.content.read(max_bytes + 1 - len(raw))
        if not chunk:
            break
        raw += chunk
    if len(raw) > max_bytes:
        raise _too_large(max_bytes)
    return payloads.parse_json_object(bytes(raw))


def _too_large(max_bytes: int) -> DomainError:
    return DomainError(413, "payload_too_large", f"The body may be at most {max_bytes} bytes.")


def path_id(request: web.Request, name: str) -> uuid.UUID:
    """The UUID in the path parameter `<thing>_id`.

    A malformed id answers exactly like an unknown one (404 `<thing>_not_found`): the two
    cannot be told apart, so a caller learns nothing by probing ids.
    """
    thing = name.removesuffix("_id")
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError:
        raise not_found(f"{thing}_not_found", f"No such {thing}.") from None
