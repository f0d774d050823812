"""The OpenAPI document (served at ``/docs/openapi.json`` and rendered at ``/docs``) names every route the gateway
serves and no route it does not. The routes are read from the app itself (``app.router.routes``), built in this
process without serving: no gateway, no Claude Code."""

from __future__ import annotations

import re
from pathlib import Path

from ccapi.api.openapi import DOCUMENT
from ccapi.app import create_app
from ccapi.config import Settings

_PARAM = re.compile(r"<[^>]+>")
_DOCUMENTED_PARAM = re.compile(r"\{[^}]+\}")
_METHODS = {"get", "post", "put", "patch", "delete"}


def served_operations(home: Path) -> set[tuple[str, str]]:
    """(method, path) of every route, path parameters as ``{}``; Sanic's automatic HEAD and OPTIONS left out."""
    app = create_app(Settings(home=home), name="ccapi_openapi_walk")
    found = set()
    for route in app.router.routes:
        path = "/" + _PARAM.sub("{}", route.path).strip("/")
        found |= {(method.lower(), path) for method in route.methods if method.lower() in _METHODS}
    return found


def documented_operations() -> set[tuple[str, str]]:
    return {
        (method, _DOCUMENTED_PARAM.sub("{}", path))
        for path, item in DOCUMENT["paths"].items()
        for method in item
        if method in _METHODS
    }


def test_the_openapi_document_names_every_route_and_no_other(tmp_path: Path) -> None:
    """``GET /docs`` and ``GET /docs/openapi.json`` were served (with the key) but missing from the document that
    claims to describe every route, and so from the reference page and a client generated from it."""
    served, documented = served_operations(tmp_path), documented_operations()
    assert len(served) >= 20  # guards the walk itself
    assert sorted(served - documented) == [], "served but not in ccapi/api/openapi.py"
    assert sorted(documented - served) == [], "in ccapi/api/openapi.py but not served"


def test_only_the_routes_open_without_a_key_are_documented_as_open() -> None:
    """``security: []`` in the document means "no key needed": only ``/`` and ``/healthz`` are (docs/api.md)."""
    open_routes = {
        (method, path)
        for path, item in DOCUMENT["paths"].items()
        for method, operation in item.items()
        if method in _METHODS and operation.get("security") == []
    }
    assert open_routes == {("get", "/"), ("get", "/healthz")}
