"""The browser apps: the patient page at /, the doctor console at /console, the triage performance page at
/performance, their static files (the client library of clients/js under /static/client/) and security headers.

Files are read once at start-up and kept in memory with a gzip copy and an ETag,
because the patient page must stay light on slow mobile data: every response is
compressed, and a returning browser revalidates instead of downloading again.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from store.errors import DomainError
from triage import checklist, photo_gate, photo_quality
from web.settings import Settings

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
# The Socket.IO browser client comes from npm (`npm ci`), never copied into the repository.
VENDOR_FILES = {"vendor/socket.io.esm.min.js": Path("socket.io-client/dist/socket.io.esm.min.js")}
# The pages run on the JavaScript client library (clients/js), served as it is: plain ES modules, no build step.
CLIENT_URL_PREFIX = "client/"
CLIENT_FILES = ("index.js", "src/*.js")

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".webmanifest": "application/manifest+json",
}

# No inline script or style, no eval, no third-party origin; Trusted Types with no
# policy makes every string-to-HTML sink (innerHTML and friends) throw, so text
# from users can only ever reach the page as text.
CSP_DIRECTIVES = (
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' blob:",
    "connect-src 'self'",
    "manifest-src 'self'",
    "form-action 'self'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
    "object-src 'none'",
    "require-trusted-types-for 'script'",
    "trusted-types 'none'",
)
CONTENT_SECURITY_POLICY = "; ".join(CSP_DIRECTIVES)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes
    content_type: str
    etag: str


def make_asset(body: bytes, suffix: str) -> Asset:
    content_type = CONTENT_TYPES.get(suffix, "application/octet-stream")
    etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
    return Asset(body, gzip.compress(body, compresslevel=9, mtime=0), content_type, etag)


def load_asset(path: Path) -> Asset:
    return make_asset(path.read_bytes(), path.suffix)


def load_assets(node_modules_dir: Path, client_js_dir: Path) -> dict[str, Asset]:
    """Every file under web/static, the client library and the npm files the pages import, keyed by URL path."""
    assets = {
        str(path.relative_to(STATIC_DIR)): load_asset(path)
        for path in sorted(STATIC_DIR.rglob("*"))
        if path.is_file() and path.suffix != ".html"
    }
    client_files = sorted(path for pattern in CLIENT_FILES for path in client_js_dir.glob(pattern))
    assets.update(
        {CLIENT_URL_PREFIX + path.relative_to(client_js_dir).as_posix(): load_asset(path) for path in client_files}
    )
    if not client_files:
        log.warning(
            "the JavaScript client library is missing; set SKINDOC_CLIENT_JS_DIR", extra={"path": str(client_js_dir)}
        )
    for url_path, package_path in VENDOR_FILES.items():
        source = node_modules_dir / package_path
        if source.is_file():
            assets[url_path] = load_asset(source)
        else:
            log.warning("browser dependency missing; run `npm ci`", extra={"path": str(source)})
    return assets


def asset_response(request: web.Request, asset: Asset, cache_control: str) -> web.StreamResponse:
    headers = {**SECURITY_HEADERS, "ETag": asset.etag, "Cache-Control": cache_control, "Vary": "Accept-Encoding"}
    if asset.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        headers["Content-Encoding"] = "gzip"
        body = asset.gzipped
    else:
        body = asset.body
    headers["Content-Type"] = asset.content_type
    return web.Response(body=body, headers=headers)


PAGES = {"/": "index.html", "/console": "console.html", "/performance": "performance.html"}
CONFIG_PLACEHOLDER = b'<meta name="skindoc-config" content="{}">'
OIDC_DISCOVERY_TIMEOUT_S = 5


def page_config(settings: Settings, oidc_authorization_endpoint: str | None) -> dict[str, Any]:
    """What the browser needs to know before its first API call: the photo limits, the longest message (in code
    points), the checklist's questions, the photo-quality limits for the retake hint (the server's own, so both
    judge alike), how to sign in."""
    triage = settings.triage
    config: dict[str, Any] = {
        "photos": {
            "min_side": triage.min_side,
            "max_upload_bytes": triage.max_upload_bytes,
            "max_photos": triage.max_photos_per_consultation,
        },
        "chat": {"max_message_chars": settings.chat.max_message_chars},
        "checklist": [{"key": item.key, "question": item.question} for item in checklist.CHECKLIST],
        "quality": {
            "analysis_side": photo_quality.ANALYSIS_SIDE,
            "outside_field": photo_quality.OUTSIDE_FIELD,
            "edge_band": photo_quality.EDGE_BAND,
            "limits": photo_gate.quality_thresholds()["limits"],
            "advice": photo_quality.PROBLEMS,
        },
    }
    if oidc_authorization_endpoint and settings.auth.oidc_client_id:
        config["oidc"] = {
            "authorization_endpoint": oidc_authorization_endpoint,
            "client_id": settings.auth.oidc_client_id,
        }
    return config


def render_page(template: Path, config: dict[str, Any]) -> Asset:
    """The page with its settings in a <meta> (HTML-escaped JSON), so they cost no extra request."""
    meta = f'<meta name="skindoc-config" content="{html.escape(json.dumps(config), quote=True)}">'
    body = template.read_bytes()
    if CONFIG_PLACEHOLDER not in body:
        raise RuntimeError(f"{template} lacks the skindoc-config placeholder")
    return make_asset(body.replace(CONFIG_PLACEHOLDER, meta.encode()), template.suffix)


async def discover_authorization_endpoint(issuer: str) -> str | None:
    """The provider's authorization endpoint, from its OpenID discovery document; None when unreachable."""
    url = f"{issuer}/.well-known/openid-configuration"
    try:
        timeout = aiohttp.ClientTimeout(total=OIDC_DISCOVERY_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as client, client.get(url) as response:
            response.raise_for_status()
            return (await response.json())["authorization_endpoint"]
    except (aiohttp.ClientError, TimeoutError, KeyError, ValueError) as exc:
        log.warning(
            "OpenID discovery failed; the Google sign-in button stays hidden", extra={"url": url, "error": repr(exc)}
        )
        return None


def setup(app: web.Application, settings: Settings) -> None:
    assets = load_assets(settings.node_modules_dir, settings.client_js_dir)
    pages = {name: render_page(STATIC_DIR / name, page_config(settings, None)) for name in PAGES.values()}

    async def discover_oidc(app: web.Application) -> None:
        if settings.auth.oidc_issuer and settings.auth.oidc_client_id:
            endpoint = await discover_authorization_endpoint(settings.auth.oidc_issuer)
            config = page_config(settings, endpoint)
            pages.update({name: render_page(STATIC_DIR / name, config) for name in PAGES.values()})

    def page(name: str):
        async def handler(request: web.Request) -> web.StreamResponse:
            # Pages always revalidate so a deploy is seen at once; the ETag makes that one cheap round trip.
            return asset_response(request, pages[name], "no-cache")

        return handler

    async def static_file(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        asset = assets.get(name)
        if asset is None:
            if name in VENDOR_FILES:
                raise DomainError(
                    503,
                    "dependency_missing",
                    "The Socket.IO browser client is not installed on this server; run `npm ci`.",
                )
            if name.startswith(CLIENT_URL_PREFIX) and not any(a.startswith(CLIENT_URL_PREFIX) for a in assets):
                raise DomainError(
                    503,
                    "dependency_missing",
                    "The client library is not installed on this server; set SKINDOC_CLIENT_JS_DIR.",
                )
            raise DomainError(404, "not_found", "No such file.")
        return asset_response(request, asset, "no-cache")

    app.on_startup.append(discover_oidc)
    for path, name in PAGES.items():
        app.router.add_get(path, page(name))
    app.router.add_get("/static/{name:.+}", static_file)
