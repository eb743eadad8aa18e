"""The OpenAPI 3.1 document at /api/v1/openapi.json: the base document plus each domain's fragment.

Each domain keeps the description of its own routes beside its code
(`<domain>/openapi.json`, holding `paths` and `components.schemas`); this module
merges them and refuses two different definitions under one name.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from pathlib import Path
from typing import Any

from aiohttp import web

# Packages whose folder holds an openapi.json fragment (chat's outcomes keep theirs beside their routes).
DOMAIN_FRAGMENTS = ("auth", "chat", "chat.outcomes", "triage")


def _merge_named(target: dict[str, Any], source: dict[str, Any], what: str, origin: str) -> None:
    for name, value in source.items():
        if name in target and target[name] != value:
            raise ValueError(f"{origin}: {what} {name!r} is already defined differently")
        target[name] = value


def build_document() -> dict[str, Any]:
    document = json.loads((Path(__file__).parent / "openapi_base.json").read_text())
    schemas = document["components"]["schemas"]
    for domain in DOMAIN_FRAGMENTS:
        if importlib.util.find_spec(domain) is None:
            continue
        path = Path(importlib.import_module(domain).__file__).parent / "openapi.json"
        if not path.exists():
            continue
        fragment = json.loads(path.read_text())
        _merge_named(document["paths"], fragment.get("paths", {}), "path", str(path))
        _merge_named(schemas, fragment.get("components", {}).get("schemas", {}), "schema", str(path))
    return document


def setup(app: web.Application) -> None:
    body = json.dumps(build_document())

    async def openapi(request: web.Request) -> web.Response:
        return web.Response(text=body, content_type="application/json")

    app.router.add_get("/api/v1/openapi.json", openapi)
