"""Bearer-token authentication: every path but ``/healthz`` (and the login page) needs the token.

Programs send ``Authorization: Bearer <token>``. A browser exchanges the token once (``POST /v1/session``)
for an HttpOnly, SameSite=Strict cookie holding an HMAC of it (the token itself is never stored in the
browser), so ``<img>`` tags of the live view and snapshots authenticate too. A request authenticated by the
cookie that changes something must also carry ``X-Requested-With: yolostream``: a cross-site form cannot
set that header, so a forged request fails even where a browser would send the cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from typing import Any

from yolostream.errors import ConfigError

log = logging.getLogger("yolostream.web")

TOKEN_ENV = "YOLOSTREAM_TOKEN"
COOKIE = "yolostream_session"
CSRF_HEADER = "x-requested-with"
CSRF_VALUE = "yolostream"
MIN_TOKEN_CHARS = 16
# Reachable without the token: liveness, and the page (plus its two files) where the token is entered.
PUBLIC_PATHS = frozenset({"/healthz", "/login", "/static/login.js", "/static/style.css", "/favicon.ico"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def resolve_token(configured: str | None) -> tuple[str, str]:
    """``(token, where it came from)``: ``server.web.token``, else ``$YOLOSTREAM_TOKEN``, else a new random
    one. A configured token shorter than `MIN_TOKEN_CHARS` is refused (it could be guessed)."""
    for value, where in ((configured, "server.web.token"), (os.environ.get(TOKEN_ENV), f"${TOKEN_ENV}")):
        if value:
            if len(value) < MIN_TOKEN_CHARS:
                raise ConfigError(f"{where}: the token must have at least {MIN_TOKEN_CHARS} characters")
            return value, where
    return secrets.token_urlsafe(24), "generated"


class TokenAuth:
    """Checks requests against one token (constant-time comparisons)."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()
        self.session = hmac.new(self._token, b"yolostream-session", hashlib.sha256).hexdigest()

    def bearer_ok(self, authorization: str | None) -> bool:
        """``Authorization`` header value is ``Bearer <token>``."""
        if not authorization:
            return False
        scheme, _, value = authorization.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), self._token)

    def cookie_ok(self, cookie: str | None) -> bool:
        return bool(cookie) and hmac.compare_digest(str(cookie).encode(), self.session.encode())

    def check(self, method: str, path: str, headers: dict[str, str], cookies: dict[str, str]) -> str | None:
        """None when the request may pass, else why not (for the 401/403 message). ``headers`` lower-cased."""
        if path in PUBLIC_PATHS:
            return None
        if self.bearer_ok(headers.get("authorization")):
            return None
        if self.cookie_ok(cookies.get(COOKIE)):
            if method not in _SAFE_METHODS and headers.get(CSRF_HEADER) != CSRF_VALUE:
                return f"csrf: a cookie-authenticated {method} needs the header X-Requested-With: {CSRF_VALUE}"
            return None
        if headers.get("authorization"):
            return "invalid token"
        return "missing token: send Authorization: Bearer <token> (or log in at /login)"


class AuthGuard:
    """ASGI middleware: a request without a valid token (or session cookie) gets 401 JSON (403 for a
    cookie request missing the CSRF header); the dashboard's page redirects to ``/login`` instead."""

    def __init__(self, app: Any, auth: TokenAuth) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from starlette.requests import HTTPConnection

        from yolostream.web.limits import send_json

        conn = HTTPConnection(scope)
        why = self.auth.check(scope["method"], scope["path"], dict(conn.headers), dict(conn.cookies))
        if why is None:
            await self.app(scope, receive, send)
        elif scope["path"] == "/" and scope["method"] == "GET":
            await send({"type": "http.response.start", "status": 303, "headers": [(b"location", b"/login")]})
            await send({"type": "http.response.body", "body": b""})
        else:
            status = 403 if why.startswith("csrf") else 401
            headers = [(b"www-authenticate", b'Bearer realm="yolostream"')] if status == 401 else []
            await send_json(send, status, {"error": why, "status": status}, headers)
