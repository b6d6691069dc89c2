"""The OpenAPI 3 document at ``/api/v1/openapi.json``, merged from module fragments."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def document(fragments: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """One document whose ``paths`` are the union of every module's ``OPENAPI_PATHS``."""
    paths: dict[str, Any] = {}
    for fragment in fragments:
        for path, operations in fragment.items():
            paths.setdefault(path, {}).update(operations)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "sidetrace dashboard API",
            "version": "1",
            "description": "Traces, search and analytics from ClickHouse; "
            "Jaeger-compatible endpoints live under /api/.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic"},
            }
        },
    }


def query_param(
    name: str, schema: dict[str, Any], description: str = "", required: bool = False
) -> dict[str, Any]:
    """A query parameter entry, so fragments stay short."""
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
    }


def path_param(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema,
    }


def json_response(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    content = {"application/json": {"schema": schema or {"type": "object"}}}
    return {"description": description, "content": content}


ERROR_RESPONSES = {
    "400": json_response("bad parameters", {"type": "object"}),
    "404": json_response("not found", {"type": "object"}),
}
# What every state-changing route may also answer (dashboard/cross_site.py, body_limit.py).
WRITE_ERROR_RESPONSES = {
    "403": json_response("refused as cross-site (Origin or Sec-Fetch-Site)"),
    "413": json_response("body over the size limit"),
    "415": json_response("body not sent as Content-Type: application/json"),
}
