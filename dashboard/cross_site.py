"""Refuse state-changing requests that a page on another origin made the browser send.

A browser attaches basic-auth credentials to requests that any site triggers: a form
auto-submitted to ``/alerts/silences`` or a ``text/plain`` fetch to
``/api/v1/silences`` would act as the signed-in user. The rule is Go's
``http.CrossOriginProtection``: safe methods pass; otherwise ``Sec-Fetch-Site``
must be ``same-origin`` or ``none`` when the browser sends it, and when only
``Origin`` is sent its host must be the request's ``Host`` (or the dashboard's
external URL). Requests with neither header come from non-browser clients and pass.
JSON APIs (``/api/...``) also take bodies only as ``application/json``, a type no
page can send to another origin without a CORS preflight, which is never granted.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
JSON_API_PREFIX = "/api/"


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL, lowercased; "" when it has none."""
    parts = urlsplit(url.strip())
    if not parts.scheme or not parts.netloc:
        return ""
    return f"{parts.scheme}://{parts.netloc}".lower()


def cross_site_refusal(
    method: str, headers: Headers, trusted_origins: frozenset[str]
) -> str | None:
    """Why a request must be refused as cross-site, or None when it may proceed."""
    if method in SAFE_METHODS:
        return None
    origin = headers.get("origin", "")
    if origin and origin_of(origin) in trusted_origins:
        return None
    fetch_site = headers.get("sec-fetch-site", "").lower()
    if fetch_site:
        if fetch_site in ("same-origin", "none"):
            return None
        return f"cross-site request refused (Sec-Fetch-Site: {fetch_site[:20]})"
    if not origin:
        return None
    if urlsplit(origin).netloc.lower() == headers.get("host", "").lower() != "":
        return None
    return f"cross-origin request refused (Origin: {origin[:100]})"


def json_refusal(method: str, path: str, headers: Headers) -> str | None:
    """Why a write to a JSON API is refused for its media type, or None."""
    if not path.startswith(JSON_API_PREFIX) or method in SAFE_METHODS:
        return None
    declared = headers.get("content-type")
    if declared is None and method not in BODY_METHODS:
        return None  # a DELETE without a body
    media_type = (declared or "").partition(";")[0].strip().lower()
    if media_type == "application/json":
        return None
    return f"send the body as Content-Type: application/json (got {media_type[:60] or 'none'!r})"


class CrossSiteGuard:
    """403 for cross-site writes, 415 for JSON API writes that are not JSON."""

    def __init__(self, app: ASGIApp, trusted_origins: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.trusted_origins = frozenset(o for o in map(origin_of, trusted_origins) if o)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            method = scope["method"]
            response: Response | None = None
            if reason := cross_site_refusal(method, headers, self.trusted_origins):
                response = JSONResponse({"error": reason}, status_code=403)
            elif reason := json_refusal(method, scope["path"], headers):
                response = JSONResponse({"error": reason}, status_code=415)
            if response is not None:
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
