"""Optional bearer-token / basic auth for every route but ``/healthz``."""

from __future__ import annotations

import base64
import binascii
import hmac

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from dashboard.context import AuthSettings

OPEN_PATHS = frozenset({"/healthz"})


def authorized(settings: AuthSettings, header: str) -> bool:
    """True when the Authorization header matches one of the configured schemes."""
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if settings.token and scheme == "bearer":
        return hmac.compare_digest(value.strip().encode(), settings.token.encode())
    if settings.basic_user and scheme == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, _, password = decoded.partition(":")
        return hmac.compare_digest(user.encode(), settings.basic_user.encode()) and (
            hmac.compare_digest(password.encode(), (settings.basic_password or "").encode())
        )
    return False


class AuthMiddleware:
    """Rejects unauthenticated HTTP requests with 401 when auth is configured."""

    def __init__(self, app: ASGIApp, settings: AuthSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.settings.enabled or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if authorized(self.settings, request.headers.get("authorization", "")):
            await self.app(scope, receive, send)
            return
        challenge = 'Basic realm="sidetrace"' if self.settings.basic_user else "Bearer"
        response: Response = PlainTextResponse(
            "authentication required", status_code=401, headers={"WWW-Authenticate": challenge}
        )
        await response(scope, receive, send)
