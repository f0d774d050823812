"""``GET /docs/openapi.json`` and ``GET /docs``: the written OpenAPI document, as JSON and as one static page.

sanic-ext's Redoc and Swagger pages load their scripts from a CDN in the reader's browser, so offline
they show nothing and online they tell a third party who reads the docs. This page has no script at
all, one inline style allowed by hash, and links only within itself and to ``/docs/openapi.json``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from html import escape
from typing import Any

import orjson
from sanic import Blueprint, Request
from sanic.response import HTTPResponse, html, raw

from ccapi.api.console import content_security_policy
from ccapi.api.openapi import DOCUMENT

bp = Blueprint("reference")

_STYLE = """
body { margin: 0 auto; max-width: 1100px; padding: 16px 24px; font: 14px/1.5 system-ui, sans-serif; color: #1d2127; }
h1 { color: #c15f3c; } h2 { margin-top: 36px; border-bottom: 1px solid #dde1e6; } h3 { margin: 22px 0 4px; }
code, pre { font: 12.5px ui-monospace, Menlo, Consolas, monospace; }
pre { background: #f6f7f9; padding: 8px; overflow: auto; }
.method { display: inline-block; min-width: 66px; font-weight: 600; text-transform: uppercase; }
table { border-collapse: collapse; margin: 4px 0; }
td, th { border-top: 1px solid #dde1e6; padding: 3px 10px 3px 0; text-align: left; vertical-align: top; }
.muted { color: #69717d; } nav li { list-style: none; }
"""
_METHODS = ("get", "post", "put", "patch", "delete")


def render(document: Mapping[str, Any]) -> str:
    """The whole page: an index of operations, each operation, then every schema as JSON."""
    info = document["info"]
    operations = [
        (path, method, item[method])
        for path, item in document["paths"].items()
        for method in _METHODS
        if method in item
    ]
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8"><meta name="referrer" content="no-referrer">',
        f'<link rel="icon" href="data:,"><title>{escape(info["title"])} API reference</title>',
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{escape(info['title'])} {escape(info['version'])}</h1>",
        f"<p>{escape(info.get('description', ''))}.",
        'Machine-readable: <a href="/docs/openapi.json">openapi.json</a>.</p>',
        "<nav><h2>Operations</h2><ul>",
        *(
            f'<li><a href="#{_anchor(m, p)}"><span class="method">{m}</span> <code>{escape(p)}</code></a>'
            f' <span class="muted">{escape(op.get("summary", ""))}</span></li>'
            for p, m, op in operations
        ),
        "</ul></nav>",
        *(_operation(p, m, op) for p, m, op in operations),
        "<h2>Schemas</h2>",
        *(
            f'<h3 id="schema-{escape(name)}">{escape(name)}</h3><pre>{escape(_json(schema))}</pre>'
            for name, schema in document.get("components", {}).get("schemas", {}).items()
        ),
        "</body></html>",
    ]
    return "\n".join(parts)


def _operation(path: str, method: str, op: Mapping[str, Any]) -> str:
    rows = [
        f'<h3 id="{_anchor(method, path)}"><span class="method">{method}</span> <code>{escape(path)}</code></h3>',
        f"<p>{escape(op.get('summary', ''))}</p>",
    ]
    if op.get("description"):
        rows.append(f"<p class=muted>{escape(op['description'])}</p>")
    if params := op.get("parameters"):
        rows.append("<table><tr><th>parameter</th><th>in</th><th>type</th><th>description</th></tr>")
        rows += (
            f"<tr><td><code>{escape(p['name'])}</code>{' (required)' if p.get('required') else ''}</td>"
            f"<td>{escape(p['in'])}</td><td>{_type(p.get('schema', {}))}</td>"
            f"<td>{escape(p.get('description', ''))}</td></tr>"
            for p in params
        )
        rows.append("</table>")
    if body := op.get("requestBody"):
        rows.append(f"<p>Body: {', '.join(_media(body.get('content', {})))}</p>")
    rows.append("<table><tr><th>status</th><th>meaning</th><th>body</th></tr>")
    rows += (
        f"<tr><td>{escape(code)}</td><td>{escape(r.get('description', ''))}</td>"
        f"<td>{', '.join(_media(r.get('content', {})))}</td></tr>"
        for code, r in op.get("responses", {}).items()
    )
    rows.append("</table>")
    return "\n".join(rows)


def _media(content: Mapping[str, Any]) -> Iterator[str]:
    for media_type, media in content.items():
        yield f"<code>{escape(media_type)}</code> {_type(media.get('schema', {}))}"


def _type(schema: Mapping[str, Any]) -> str:
    """A schema reference as a link to it; an inline schema by its type."""
    if ref := schema.get("$ref"):
        name = escape(ref.rsplit("/", 1)[-1])
        return f'<a href="#schema-{name}">{name}</a>'
    if "items" in schema:
        return f"array of {_type(schema['items'])}"
    return escape(str(schema.get("type", "object")))


def _anchor(method: str, path: str) -> str:
    return escape(f"{method}-{path}".replace("/", "-").replace("{", "").replace("}", ""))


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


_PAGE = render(DOCUMENT)
_HEADERS = {
    "Content-Security-Policy": content_security_policy(_PAGE, connect=False),
    "X-Content-Type-Options": "nosniff",
}


@bp.get("/docs")
async def reference(request: Request) -> HTTPResponse:
    """The API reference, readable without a network connection."""
    return html(_PAGE, headers=_HEADERS)


_DOCUMENT_JSON = orjson.dumps(DOCUMENT)


@bp.get("/docs/openapi.json")
async def openapi_document(request: Request) -> HTTPResponse:
    """The written OpenAPI 3.0 document, the same bytes on every request."""
    return raw(_DOCUMENT_JSON, content_type="application/json")
