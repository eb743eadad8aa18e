"""Headers every response carries, set just before it is sent (static files and Socket.IO's included).

- `X-Content-Type-Options: nosniff`: a browser never guesses a type other than the one declared.
- `Cache-Control: no-store` on the API: its answers (photos included) are personal data, which
  no browser or shared cache may keep.
- `Server: skindoc`: no product versions for a scanner to match against known flaws.
"""

from __future__ import annotations

from aiohttp import web

API_PREFIX = "/api/"
SERVER_NAME = "skindoc"


async def _set_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Server"] = SERVER_NAME
    if request.path.startswith(API_PREFIX):
        response.headers["Cache-Control"] = "no-store"


def setup(app: web.Application) -> None:
    app.on_response_prepare.append(_set_headers)
