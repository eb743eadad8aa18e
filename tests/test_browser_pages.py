"""How the browser apps are served: security headers, compression, caching, page weight, no inline code."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from html import unescape
from urllib.parse import urljoin

from aiohttp import web

from triage.checklist import CHECKLIST
from triage.photo_quality import PROBLEMS, load_thresholds
from web.app import create_app
from web.pages import SECURITY_HEADERS, STATIC_DIR

CLIENT_JS_DIR = STATIC_DIR.parent.parent / "clients" / "js"

PAGE_WEIGHT_LIMIT = 200 * 1024


def referenced_assets(html: str) -> list[str]:
    return re.findall(r'(?:href|src)="(/static/[^"]+)"', html)


async def test_pages_carry_a_strict_content_security_policy(client):
    for path in ("/", "/console", "/performance"):
        response = await client.get(path)
        assert response.status == 200
        assert response.content_type == "text/html"
        csp = response.headers["Content-Security-Policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["default-src"] == "'none'"
        assert directives["script-src"] == "'self'"
        assert directives["style-src"] == "'self'"
        assert directives["frame-ancestors"] == "'none'"
        assert directives["require-trusted-types-for"] == "'script'"
        assert "unsafe" not in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"


async def test_the_client_library_is_served_beside_the_pages_under_the_same_policy(client):
    """The apps run on clients/js itself (no copy in web/static): the very files, with the pages' headers."""
    index = await client.get("/static/client/index.js")
    assert index.status == 200
    assert index.content_type == "text/javascript"
    assert await index.read() == (CLIENT_JS_DIR / "index.js").read_bytes()
    for name in ("session", "realtime", "conversation", "queue", "errors"):
        module = await client.get(f"/static/client/src/{name}.js")
        assert await module.read() == (CLIENT_JS_DIR / "src" / f"{name}.js").read_bytes()
        for header, value in SECURITY_HEADERS.items():
            assert module.headers[header] == value, (name, header)
    # Only the library's modules: not its tests, not its package files.
    for private in ("test/client.test.js", "package.json", "README.md"):
        assert (await client.get(f"/static/client/{private}")).status == 404, private


def test_no_inline_script_style_or_handler_in_the_pages():
    for page in ("index.html", "console.html", "performance.html"):
        html = (STATIC_DIR / page).read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), page
        assert "<style" not in html and " style=" not in html, page
        assert not re.search(r"\son[a-z]+=", html), page


def test_scripts_never_write_html_from_strings():
    for path in [*(STATIC_DIR / "js").glob("*.js"), *(CLIENT_JS_DIR / "src").glob("*.js")]:
        source = path.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in source, f"{path.name} uses {sink}"


async def test_patient_page_weighs_under_200_kb_compressed(client):
    response = await client.get("/", headers={"Accept-Encoding": "gzip"})
    html = await response.text()
    # aiohttp's client decompresses transparently, so the bytes on the wire are in Content-Length.
    total = int(response.headers["Content-Length"])
    assets = referenced_assets(html)
    assert "/static/vendor/socket.io.esm.min.js" in assets
    for asset in assets:
        asset_response = await client.get(asset, headers={"Accept-Encoding": "gzip"})
        assert asset_response.status == 200, asset
        assert asset_response.headers["Content-Encoding"] == "gzip", asset
        total += int(asset_response.headers["Content-Length"])
    print(f"patient page weight (HTML + CSS + JS, gzip): {total / 1024:.1f} KB in {len(assets) + 1} requests")
    assert total < PAGE_WEIGHT_LIMIT


async def test_every_module_a_page_imports_is_preloaded(client):
    """A module found only when its importer runs costs one more round trip: seconds on Slow 3G."""
    for path in ("/", "/console", "/performance"):
        html = await (await client.get(path)).text()
        preloaded = {a for a in referenced_assets(html) if a.endswith(".js")}
        to_visit = list(preloaded)
        while to_visit:
            module = to_visit.pop()
            response = await client.get(module)
            assert response.status == 200, module
            for imported in re.findall(r"""from\s+'(\.?\.?/[^']+)'""", await response.text()):
                url = urljoin(module, imported)
                assert url in preloaded, f"{path}: {url} (imported by {module}) is not preloaded"


async def test_assets_revalidate_with_etags(client):
    first = await client.get("/static/css/skindoc.css")
    etag = first.headers["ETag"]
    assert first.headers["Cache-Control"] == "no-cache"
    again = await client.get("/static/css/skindoc.css", headers={"If-None-Match": etag})
    assert again.status == 304
    assert await again.read() == b""


async def test_unknown_static_file_is_a_problem_404(client):
    response = await client.get("/static/../pages.py")
    assert response.status == 404
    response = await client.get("/static/js/nope.js")
    assert response.status == 404
    assert response.content_type == "application/problem+json"


def page_config(html: str) -> dict:
    content = re.search(r'<meta name="skindoc-config" content="([^"]*)">', html).group(1)
    return json.loads(unescape(content))


async def test_page_config_carries_the_photo_limits_and_no_google_button_by_default(client, settings):
    config = page_config(await (await client.get("/")).text())
    assert "oidc" not in config
    assert config["photos"] == {
        "min_side": settings.triage.min_side,
        "max_upload_bytes": settings.triage.max_upload_bytes,
        "max_photos": settings.triage.max_photos_per_consultation,
    }
    # The checklist's questions and the fitted quality limits come from the server, so the page asks and
    # judges exactly as the server does.
    # The longest message, in code points as the server counts them (the chat box cannot use maxlength).
    assert config["chat"] == {"max_message_chars": settings.chat.max_message_chars}
    assert [item["key"] for item in config["checklist"]] == [item.key for item in CHECKLIST]
    assert config["quality"]["limits"] == load_thresholds()["limits"]
    assert set(config["quality"]["advice"]) == set(PROBLEMS)


async def test_google_sign_in_is_offered_with_the_issuers_authorization_endpoint(
    aiohttp_client, aiohttp_server, settings
):
    async def discovery(request: web.Request) -> web.Response:
        base = f"{request.scheme}://{request.host}"
        return web.json_response({"issuer": base, "authorization_endpoint": f"{base}/o/authorize"})

    issuer_app = web.Application()
    issuer_app.router.add_get("/.well-known/openid-configuration", discovery)
    issuer = await aiohttp_server(issuer_app)
    issuer_url = str(issuer.make_url("")).rstrip("/")
    with_oidc = replace(settings, auth=replace(settings.auth, oidc_issuer=issuer_url, oidc_client_id="skindoc-web"))
    client = await aiohttp_client(create_app(with_oidc))
    for path in ("/", "/console", "/performance"):
        config = page_config(await (await client.get(path)).text())
        assert config["oidc"] == {"authorization_endpoint": f"{issuer_url}/o/authorize", "client_id": "skindoc-web"}
